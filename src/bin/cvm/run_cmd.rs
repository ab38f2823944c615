//! `cvm run` (being written).

use crate::Globals;

#[derive(clap::Args)]
pub struct RunArgs {}

pub fn run(_globals: &Globals, _args: RunArgs) -> anyhow::Result<i32> {
    anyhow::bail!("cvm run is not built yet")
}
