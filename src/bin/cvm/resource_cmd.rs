//! `cvm resource …`: what a batch author computes by hand otherwise: a new
//! resource's id, a nullifier key and its commitment, a nullifier.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use causality_vm::content_id::{hex_decode_32, hex_encode};
use causality_vm::resource::{nullifier_input, NewResource, ResourceId, NULLIFIER_CONTEXT};
use causality_vm::ContentId;
use serde_json::json;

use crate::Globals;

#[derive(clap::Subcommand)]
pub enum ResourceCommand {
    /// The id a new resource gets: FILE (`-`: standard input) holds its
    /// fields as a batch file's `create` takes them.
    Id { file: PathBuf },
    /// A fresh random nullifier key and its commitment (keep the key secret:
    /// it is what consumes the resource).
    NewKey,
    /// The commitment of a nullifier key (64 hex digits; `-` or nothing:
    /// read from standard input, so it stays out of the shell history).
    NkCommitment { key: Option<String> },
    /// The nullifier that consuming resource ID with the key spends.
    Nullifier {
        /// The resource id (cid:blake3:…).
        #[arg(long)]
        id: String,
        /// The nullifier key (64 hex digits; `-`: standard input).
        #[arg(long, default_value = "-")]
        key: String,
    },
}

pub fn run(globals: &Globals, cmd: ResourceCommand) -> anyhow::Result<i32> {
    match cmd {
        ResourceCommand::Id { file } => {
            let text = read_input(&file)?;
            let resource: NewResource = serde_json::from_str(&text)
                .with_context(|| format!("{}: the fields of a new resource (docs/BATCH_FORMAT.md)", file.display()))?;
            let id = ContentId::of_encoding(&resource.id_encoding());
            let commitment_ok = causality_vm::prove::encoding::is_field_encoding(&resource.nullifier_key_commitment);
            if globals.json {
                out!("{}", json!({ "id": id, "nullifier_key_commitment_usable": commitment_ok }))?;
            } else {
                out!("{id}")?;
            }
            if !commitment_ok {
                note!("warning: its nullifier_key_commitment is not a commitment any key opens: it could never be consumed");
            }
            Ok(0)
        }
        ResourceCommand::NewKey => {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            let commitment = causality_vm::resource::nullifier_key_commitment(&key);
            if globals.json {
                out!(
                    "{}",
                    json!({ "nullifier_key": hex_encode(&key), "nullifier_key_commitment": hex_encode(&commitment) })
                )?;
            } else {
                out!("nullifier_key             {}", hex_encode(&key))?;
                out!("nullifier_key_commitment  {}", hex_encode(&commitment))?;
            }
            Ok(0)
        }
        ResourceCommand::NkCommitment { key } => {
            let key = parse_key(key.as_deref().unwrap_or("-"))?;
            let commitment = hex_encode(&causality_vm::resource::nullifier_key_commitment(&key));
            match globals.json {
                true => out!("{}", json!({ "nullifier_key_commitment": commitment }))?,
                false => out!("{commitment}")?,
            }
            Ok(0)
        }
        ResourceCommand::Nullifier { id, key } => {
            let id: ResourceId = id.parse().map_err(|e| anyhow!("--id: {e}"))?;
            let key = parse_key(&key)?;
            let nullifier = blake3::derive_key(NULLIFIER_CONTEXT, &nullifier_input(&key, &id));
            match globals.json {
                true => out!("{}", json!({ "id": id, "nullifier": hex_encode(&nullifier) }))?,
                false => out!("{}", hex_encode(&nullifier))?,
            }
            Ok(0)
        }
    }
}

fn read_input(file: &std::path::Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin().lock().take(1 << 24).read_to_string(&mut text).context("reading standard input")?;
    } else {
        text = causality_vm::bounded::read_text_at_most(file, 1 << 24)
            .with_context(|| format!("reading {}", file.display()))?;
    }
    Ok(text)
}

/// A 32-byte key in hex, given or (`-`) read from standard input.
fn parse_key(given: &str) -> anyhow::Result<[u8; 32]> {
    let text = match given {
        "-" => {
            let mut text = String::new();
            std::io::stdin()
                .lock()
                .take(4096)
                .read_to_string(&mut text)
                .context("reading the key from standard input")?;
            text
        }
        key => key.to_string(),
    };
    hex_decode_32(text.trim()).map_err(|e| anyhow!("nullifier key: {e}"))
}
