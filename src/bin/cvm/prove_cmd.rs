//! `cvm setup`, `cvm export`, `cvm verify` (being written).

use crate::Globals;

#[derive(clap::Args)]
pub struct SetupArgs {}
#[derive(clap::Args)]
pub struct ExportArgs {}
#[derive(clap::Args)]
pub struct VerifyArgs {}

pub fn setup(_globals: &Globals, _args: SetupArgs) -> anyhow::Result<i32> {
    anyhow::bail!("cvm setup is not built yet")
}
pub fn export(_globals: &Globals, _args: ExportArgs) -> anyhow::Result<i32> {
    anyhow::bail!("cvm export is not built yet")
}
pub fn verify(_globals: &Globals, _args: VerifyArgs) -> anyhow::Result<i32> {
    anyhow::bail!("cvm verify is not built yet")
}
