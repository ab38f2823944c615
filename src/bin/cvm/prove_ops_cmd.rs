//! `cvm prove-ops FILE`: compliance proofs for operations executed
//! elsewhere, without a server (the twin of the service's ProveOps jobs;
//! the document formats are in docs/SERVICE.md).

use std::path::PathBuf;

use anyhow::Context;
use causality_vm::prove::ops_document::{prove_document, OpsDocument};

use crate::Globals;

#[derive(clap::Args)]
pub struct ProveOpsArgs {
    /// The operations document (JSON; `-` reads standard input).
    pub file: PathBuf,
    /// Operations per Groth16 proof (the key set used; made on first use).
    #[arg(long, default_value_t = 4, value_parser = crate::run_cmd::ops_per_proof)]
    pub ops_per_proof: usize,
    /// Write the proofs document here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(globals: &Globals, args: ProveOpsArgs) -> anyhow::Result<i32> {
    // Bounded as a batch file is.
    let limit = causality_vm::batch::file::MAX_FILE_BYTES;
    let text = match args.file.as_os_str() == "-" {
        true => causality_vm::bounded::read_stream_at_most(std::io::stdin().lock(), limit)
            .context("reading standard input")?,
        false => causality_vm::bounded::read_at_most(&args.file, limit)
            .with_context(|| format!("reading {}", args.file.display()))?,
    };
    let origin = args.file.display().to_string();
    // Everything is checked before the keys load: a bad document costs nothing.
    let witnesses = OpsDocument::parse(&text).and_then(|doc| doc.witnesses()).with_context(|| origin.clone())?;
    let system = crate::run_cmd::load_proving_system(globals, &globals.data_dir(), args.ops_per_proof, "")?;
    let document = prove_document(&system, &witnesses).with_context(|| format!("proving {origin}"))?;
    let json = serde_json::to_string_pretty(&document)?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, format!("{json}\n")).with_context(|| format!("writing {}", path.display()))?;
            if !globals.quiet && !globals.json {
                note!(
                    "{} proofs of {} operations written to {}",
                    document.proofs.len(),
                    witnesses.len(),
                    path.display()
                );
            }
        }
        None => out!("{json}")?,
    }
    Ok(0)
}
