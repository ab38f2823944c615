//! `cvm token` (being written).

use crate::Globals;

#[derive(clap::Subcommand)]
pub enum TokenCommand {}

pub fn run(_globals: &Globals, cmd: TokenCommand) -> anyhow::Result<i32> {
    match cmd {}
}
