//! `cvm state` (being written).

use crate::Globals;

#[derive(clap::Args)]
pub struct StateArgs {}

pub fn run(_globals: &Globals, _args: StateArgs) -> anyhow::Result<i32> {
    anyhow::bail!("cvm state is not built yet")
}
