//! `cvm token`: generate domain root keys, mint, attenuate, inspect and verify
//! capability tokens. Root keys live in `<data dir>/keys.json`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use causality_vm::capability::{CapabilityToken, Caveat, KeyRing, RootKey};
use causality_vm::content_id::hex_encode;
use causality_vm::service::auth::{service_key, SERVICE_DOMAIN};
use causality_vm::DomainId;
use serde_json::json;

use crate::output::OutputError;
use crate::Globals;

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create a domain's root key and store it in the key ring.
    Keygen {
        #[arg(long)]
        domain: String,
        /// Replace an existing key (every token minted with it stops verifying).
        #[arg(long)]
        force: bool,
    },
    /// Mint a token for a domain (a root token unless caveats are given),
    /// or with --service a token for `cvm serve`'s TCP clients.
    Mint {
        #[arg(long, required_unless_present = "service", conflicts_with = "service")]
        domain: Option<String>,
        /// A service token, minted with the service key in the data dir
        /// (made on first use); narrow it with --jobs, --domains, --expires.
        #[arg(long)]
        service: bool,
        #[command(flatten)]
        caveats: CaveatArgs,
    },
    /// Narrow a token offline by appending caveats (no key needed).
    Attenuate {
        /// The token text, or @FILE to read it from a file.
        token: String,
        #[command(flatten)]
        caveats: CaveatArgs,
    },
    /// Show a token's caveats and effective permissions (does not verify it).
    Inspect {
        /// The token text, or @FILE.
        token: String,
    },
    /// Verify a token's MAC chain against the key ring, and its expiry.
    Verify {
        /// The token text, or @FILE.
        token: String,
        /// Check expiry at this Unix time instead of now.
        #[arg(long)]
        at: Option<u64>,
    },
}

/// Caveats to add. Rights are applied last, so dropping `delegate` in the same
/// step does not block the other caveats.
#[derive(clap::Args)]
pub struct CaveatArgs {
    /// A caveat as NAME=VALUE: rights=…, resources=…, domains=…, ops=…, expires=…, max-quantity=… (repeatable).
    #[arg(long = "caveat", value_name = "NAME=VALUE")]
    caveat: Vec<Caveat>,
    /// Only these rights: read, write, delete, transfer, verify, delegate (comma-separated).
    #[arg(long)]
    rights: Option<String>,
    /// Only these resources (comma-separated cid:blake3:… ids).
    #[arg(long)]
    resources: Option<String>,
    /// Only these domains (comma-separated).
    #[arg(long)]
    domains: Option<String>,
    /// Only these operation kinds: create, read, update, delete, transfer, verify (comma-separated).
    #[arg(long)]
    ops: Option<String>,
    /// Valid only while the context timestamp is before this Unix time.
    #[arg(long)]
    expires: Option<u64>,
    /// No request may move or create more than this quantity.
    #[arg(long)]
    max_quantity: Option<u64>,
    /// Service tokens: only these job kinds: execute-batch, prove-ops, hash, merkle-root, msm, groth16 (comma-separated).
    #[arg(long)]
    jobs: Option<String>,
}

impl CaveatArgs {
    fn collect(&self) -> anyhow::Result<Vec<Caveat>> {
        let mut out = self.caveat.clone();
        let lists = [
            ("rights", &self.rights),
            ("resources", &self.resources),
            ("domains", &self.domains),
            ("ops", &self.ops),
            ("jobs", &self.jobs),
        ];
        for (name, value) in lists {
            if let Some(value) = value {
                let caveat: Caveat =
                    format!("{name}={value}").parse().map_err(|e: String| anyhow!("--{name} {value:?}: {e}"))?;
                out.push(caveat);
            }
        }
        out.extend(self.expires.map(Caveat::ExpiresAt));
        out.extend(self.max_quantity.map(Caveat::MaxQuantity));
        Ok(out)
    }
}

fn key_ring_path(globals: &Globals) -> PathBuf {
    globals.data_dir().join("keys.json")
}

fn domain_arg(name: &str) -> anyhow::Result<DomainId> {
    DomainId::parse(name).map_err(|e| anyhow!("--domain {name:?}: {e}"))
}

/// The token text itself, or the contents of FILE for `@FILE`.
fn read_token(arg: &str) -> anyhow::Result<CapabilityToken> {
    let (text, source) = match arg.strip_prefix('@') {
        Some(path) => {
            // Tokens are a few hundred bytes; a long chain of caveats a few KiB.
            let text = causality_vm::bounded::read_text_at_most(std::path::Path::new(path), 1 << 20)
                .with_context(|| format!("reading token file {path}"))?;
            (text, format!("token file {path}"))
        }
        None => (arg.to_string(), "token".to_string()),
    };
    CapabilityToken::from_text(&text).with_context(|| format!("parsing {source}"))
}

fn load_ring(path: &Path) -> anyhow::Result<KeyRing> {
    Ok(KeyRing::load_or_empty(path)?)
}

fn root_key<'a>(ring: &'a KeyRing, domain: &DomainId, path: &Path) -> anyhow::Result<&'a RootKey> {
    ring.get(domain).ok_or_else(|| {
        anyhow!(
            "no root key for domain {domain} in {}: create one with `cvm token keygen --domain {domain}`",
            path.display()
        )
    })
}

pub fn run(globals: &Globals, cmd: TokenCommand) -> anyhow::Result<i32> {
    match cmd {
        TokenCommand::Keygen { domain, force } => keygen(globals, &domain_arg(&domain)?, force),
        TokenCommand::Mint { service: true, caveats, .. } => {
            let data_dir = globals.data_dir();
            let key = service_key(&data_dir).with_context(|| format!("the service key in {}", data_dir.display()))?;
            let root = CapabilityToken::mint_random(&key, DomainId::new(SERVICE_DOMAIN));
            print_token(globals, &root.attenuate_all(fitting(&root, caveats.collect()?)?)?)?;
            Ok(0)
        }
        TokenCommand::Mint { domain, caveats, .. } => {
            let domain = domain_arg(domain.as_deref().unwrap_or_default())?;
            if domain.as_str() == SERVICE_DOMAIN {
                bail!("--domain {SERVICE_DOMAIN}: service tokens are minted with `cvm token mint --service`");
            }
            let path = key_ring_path(globals);
            let ring = load_ring(&path)?;
            let root = CapabilityToken::mint_random(root_key(&ring, &domain, &path)?, domain);
            print_token(globals, &root.attenuate_all(fitting(&root, caveats.collect()?)?)?)?;
            Ok(0)
        }
        TokenCommand::Attenuate { token, caveats } => {
            let token = read_token(&token)?;
            print_token(globals, &token.attenuate_all(fitting(&token, caveats.collect()?)?)?)?;
            Ok(0)
        }
        TokenCommand::Inspect { token } => {
            inspect(globals, &read_token(&token)?)?;
            Ok(0)
        }
        TokenCommand::Verify { token, at } => verify(globals, &read_token(&token)?, at),
    }
}

/// `caveats`, if each is one `token` honours: a service token is narrowed by
/// jobs, domains and expiry only (a server refuses one with others), and a
/// job-kind caveat means nothing on a domain's token.
fn fitting(token: &CapabilityToken, caveats: Vec<Caveat>) -> anyhow::Result<Vec<Caveat>> {
    let service = token.domain.as_str() == SERVICE_DOMAIN;
    for caveat in &caveats {
        let name = caveat.kind_name();
        if service && !caveat.narrows_service_tokens() {
            bail!("--{name}: a service token is narrowed by --jobs, --domains and --expires only");
        }
        if !service && matches!(caveat, Caveat::Jobs(_)) {
            bail!("--jobs: only service tokens (`cvm token mint --service`) name job kinds");
        }
    }
    Ok(caveats)
}

fn keygen(globals: &Globals, domain: &DomainId, force: bool) -> anyhow::Result<i32> {
    if domain.as_str() == SERVICE_DOMAIN {
        bail!(
            "--domain {SERVICE_DOMAIN}: the service's key is `service.key` in the data dir, made by `cvm serve` or \
             `cvm token mint --service`"
        );
    }
    let path = key_ring_path(globals);
    // Read, change and write under the ring's lock: keys made at the same
    // time by other processes are kept.
    KeyRing::update(&path, |ring| {
        if ring.contains(domain) && !force {
            return Err(causality_vm::capability::CapabilityError::KeyRingFormat {
                path: path.clone(),
                reason: format!(
                    "domain {domain} already has a root key; --force replaces it, and every token minted with the \
                     old key stops verifying"
                ),
            });
        }
        ring.insert(domain.clone(), RootKey::generate());
        Ok(())
    })?;
    if globals.json {
        out!("{}", json!({ "domain": domain, "key_ring": path }))?;
    } else {
        out!("root key for domain {domain} stored in {}", path.display())?;
    }
    Ok(0)
}

fn print_token(globals: &Globals, token: &CapabilityToken) -> Result<(), OutputError> {
    if globals.json {
        out!("{}", token_json(token))?;
    } else {
        out!("{}", token.to_text())?;
    }
    Ok(())
}

fn token_json(token: &CapabilityToken) -> serde_json::Value {
    json!({
        "token": token.to_text(),
        "domain": token.domain,
        "identifier": hex_encode(&token.identifier),
        "caveats": token.caveats.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "effective": token.effective(),
    })
}

fn inspect(globals: &Globals, token: &CapabilityToken) -> Result<(), OutputError> {
    if globals.json {
        return out!("{}", token_json(token));
    }
    out!("domain:       {}", token.domain)?;
    out!("identifier:   {}", hex_encode(&token.identifier))?;
    if token.caveats.is_empty() {
        out!("caveats:      none (root token)")?;
    } else {
        out!("caveats:")?;
        for (i, caveat) in token.caveats.iter().enumerate() {
            out!("  {i}: {caveat}")?;
        }
    }
    out!("effective permissions (not verified; see `cvm token verify`):")?;
    for line in token.effective().to_string().lines() {
        out!("  {line}")?;
    }
    Ok(())
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn verify(globals: &Globals, token: &CapabilityToken, at: Option<u64>) -> anyhow::Result<i32> {
    let path = key_ring_path(globals);
    let ring = load_ring(&path)?;
    // A service token is rooted in the data dir's service key, not the ring.
    let service_root;
    let root = if token.domain.as_str() == SERVICE_DOMAIN {
        let data_dir = globals.data_dir();
        let key_file = causality_vm::service::auth::service_key_file(&data_dir);
        if !key_file.is_file() {
            bail!("no service key in {}: this data dir's server has minted no service tokens", data_dir.display());
        }
        service_root = service_key(&data_dir).with_context(|| format!("reading {}", key_file.display()))?;
        &service_root
    } else {
        root_key(&ring, &token.domain, &path)?
    };
    let at = at.unwrap_or_else(now);
    let unhonoured =
        token.caveats.iter().find(|c| token.domain.as_str() == SERVICE_DOMAIN && !c.narrows_service_tokens());
    let problem = match token.verify_chain(root) {
        Err(e) => Some(e.to_string()),
        Ok(()) if unhonoured.is_some() => Some(format!(
            "the chain is valid but it carries a `{}` caveat, which a service token cannot honour: servers refuse it",
            unhonoured.map_or("", |c| c.kind_name())
        )),
        Ok(()) => match token.effective().expires_at {
            Some(expiry) if at >= expiry => {
                Some(format!("the chain is valid but the token expired at {expiry} (checked at {at})"))
            }
            _ => None,
        },
    };
    if globals.json {
        out!("{}", json!({ "valid": problem.is_none(), "domain": token.domain, "checked_at": at, "error": problem }))?;
    } else {
        match &problem {
            None => out!("valid: token rooted in domain {} verifies against its root key", token.domain)?,
            Some(reason) => out!("invalid: {reason}")?,
        }
    }
    Ok(if problem.is_none() { 0 } else { 1 })
}
