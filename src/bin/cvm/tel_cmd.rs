//! `cvm tel` (being written).

use crate::Globals;

#[derive(clap::Subcommand)]
pub enum TelCommand {}

pub fn run(_globals: &Globals, cmd: TelCommand) -> anyhow::Result<i32> {
    match cmd {}
}
