//! `cvm hash` (being written).

use crate::Globals;

#[derive(clap::Args)]
pub struct HashArgs {}

pub fn run(_globals: &Globals, _args: HashArgs) -> anyhow::Result<i32> {
    anyhow::bail!("cvm hash is not built yet")
}
