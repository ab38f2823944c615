//! Rights and caveats: their stable codes, canonical MAC encodings and the
//! `name=value,…` text syntax used by the CLI and `inspect`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::content_id::{canonical, CanonicalWriter};
use crate::resource::DomainId;
use crate::resource::{OperationKind, ResourceId};

/// What a token lets its holder do. The operation a request performs needs
/// the matching right (see [`super::required_right`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Right {
    Read,
    Write,
    Delete,
    Transfer,
    Verify,
    /// The holder may derive (attenuate) further tokens from this one. A token
    /// whose effective rights lack Delegate is final: `attenuate` refuses it and
    /// `verify_chain` rejects any caveat appended after Delegate was dropped.
    Delegate,
}

impl Right {
    pub const ALL: [Right; 6] =
        [Right::Read, Right::Write, Right::Delete, Right::Transfer, Right::Verify, Right::Delegate];

    /// A stable code for the binary and MAC encodings.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Right> {
        Right::ALL.get(code as usize).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            Right::Read => "read",
            Right::Write => "write",
            Right::Delete => "delete",
            Right::Transfer => "transfer",
            Right::Verify => "verify",
            Right::Delegate => "delegate",
        }
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Right {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Right::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown right {s:?}: expected read, write, delete, transfer, verify or delegate"))
    }
}

/// The kinds of job a service token may submit (`cvm serve`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum JobKind {
    ExecuteBatch,
    ProveOps,
    Hash,
    MerkleRoot,
    Msm,
    Groth16,
}

impl JobKind {
    pub const ALL: [JobKind; 6] =
        [JobKind::ExecuteBatch, JobKind::ProveOps, JobKind::Hash, JobKind::MerkleRoot, JobKind::Msm, JobKind::Groth16];

    /// A stable code for the binary and MAC encodings.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<JobKind> {
        JobKind::ALL.get(code as usize).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            JobKind::ExecuteBatch => "execute-batch",
            JobKind::ProveOps => "prove-ops",
            JobKind::Hash => "hash",
            JobKind::MerkleRoot => "merkle-root",
            JobKind::Msm => "msm",
            JobKind::Groth16 => "groth16",
        }
    }
}

impl FromStr for JobKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
            format!("unknown job kind {s:?}: expected execute-batch, prove-ops, hash, merkle-root, msm or groth16")
        })
    }
}

pub(crate) fn operation_name(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Create => "create",
        OperationKind::Read => "read",
        OperationKind::Update => "update",
        OperationKind::Delete => "delete",
        OperationKind::Transfer => "transfer",
        OperationKind::Verify => "verify",
    }
}

pub(crate) fn operation_from_code(code: u8) -> Option<OperationKind> {
    OperationKind::ALL.get(code as usize).copied()
}

fn parse_operation(s: &str) -> Result<OperationKind, String> {
    OperationKind::ALL.into_iter().find(|k| operation_name(*k).eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
        format!("unknown operation kind {s:?}: expected create, read, update, delete, transfer or verify")
    })
}

/// A restriction. A token allows what every one of its caveats allows, so
/// appending a caveat can only narrow what the token grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Caveat {
    /// Only these rights.
    Rights(Vec<Right>),
    /// Only these resources.
    Resources(Vec<ResourceId>),
    /// Only these domains: the domains a token may be used for; on a
    /// cross-domain grant, the domains the grant is for.
    Domains(Vec<DomainId>),
    /// Only these operation kinds.
    Operations(Vec<OperationKind>),
    /// Valid while the context timestamp is strictly before this.
    ExpiresAt(Timestamp),
    /// No request may move or create more than this quantity.
    MaxQuantity(u64),
    /// Service tokens: only these kinds of job.
    Jobs(Vec<JobKind>),
}

/// Binary and MAC codes of the caveat kinds.
pub(crate) mod kind {
    pub const RIGHTS: u8 = 1;
    pub const RESOURCES: u8 = 2;
    pub const DOMAINS: u8 = 3;
    pub const OPERATIONS: u8 = 4;
    pub const EXPIRES_AT: u8 = 5;
    pub const MAX_QUANTITY: u8 = 6;
    pub const JOBS: u8 = 7;
}

impl Caveat {
    /// Whether a service token (`cvm serve`'s TCP callers) honours this
    /// caveat: jobs, domains and expiry are all a server checks, so a
    /// service token carrying another is refused rather than read wider
    /// than its holder meant.
    pub fn narrows_service_tokens(&self) -> bool {
        matches!(self, Caveat::Jobs(_) | Caveat::Domains(_) | Caveat::ExpiresAt(_))
    }

    pub fn kind_code(&self) -> u8 {
        match self {
            Caveat::Rights(_) => kind::RIGHTS,
            Caveat::Resources(_) => kind::RESOURCES,
            Caveat::Domains(_) => kind::DOMAINS,
            Caveat::Operations(_) => kind::OPERATIONS,
            Caveat::ExpiresAt(_) => kind::EXPIRES_AT,
            Caveat::MaxQuantity(_) => kind::MAX_QUANTITY,
            Caveat::Jobs(_) => kind::JOBS,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Caveat::Rights(_) => "rights",
            Caveat::Resources(_) => "resources",
            Caveat::Domains(_) => "domains",
            Caveat::Operations(_) => "ops",
            Caveat::ExpiresAt(_) => "expires",
            Caveat::MaxQuantity(_) => "max-quantity",
            Caveat::Jobs(_) => "jobs",
        }
    }

    /// The same restriction with its list sorted and deduplicated, so one
    /// restriction has one encoding (the binary form rejects any other).
    pub fn normalized(mut self) -> Caveat {
        match &mut self {
            Caveat::Rights(v) => {
                v.sort();
                v.dedup();
            }
            Caveat::Resources(v) => {
                v.sort();
                v.dedup();
            }
            Caveat::Domains(v) => {
                v.sort();
                v.dedup();
            }
            Caveat::Operations(v) => {
                v.sort_by_key(|k| k.code());
                v.dedup();
            }
            Caveat::Jobs(v) => {
                v.sort();
                v.dedup();
            }
            Caveat::ExpiresAt(_) | Caveat::MaxQuantity(_) => {}
        }
        self
    }

    /// Refuse what the binary form cannot carry.
    pub fn check_encodable(&self) -> Result<(), super::CapabilityError> {
        let invalid = |reason: String| super::CapabilityError::InvalidCaveat { caveat: self.to_string(), reason };
        match self {
            Caveat::Resources(ids) if ids.len() > u16::MAX as usize => {
                Err(invalid(format!("{} resources, more than {}", ids.len(), u16::MAX)))
            }
            Caveat::Domains(domains) => {
                if domains.len() > u16::MAX as usize {
                    return Err(invalid(format!("{} domains, more than {}", domains.len(), u16::MAX)));
                }
                match domains.iter().find(|d| d.as_str().is_empty() || d.as_str().len() > u16::MAX as usize) {
                    Some(d) => {
                        Err(invalid(format!("domain name of {} bytes (1 to {} allowed)", d.as_str().len(), u16::MAX)))
                    }
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// The bytes MAC'd into the chain for this caveat.
    pub fn mac_encoding(&self) -> Vec<u8> {
        canonical("cvm.capability.caveat", |w| self.write_mac_encoding(w))
    }

    fn write_mac_encoding(&self, w: &mut CanonicalWriter<'_>) {
        w.u8(self.kind_code());
        match self {
            Caveat::Rights(rights) => {
                w.u64(rights.len() as u64);
                for r in rights {
                    w.u8(r.code());
                }
            }
            Caveat::Resources(ids) => {
                w.u64(ids.len() as u64);
                for id in ids {
                    w.fixed(id.as_bytes());
                }
            }
            Caveat::Domains(domains) => {
                w.u64(domains.len() as u64);
                for d in domains {
                    w.str(d.as_str());
                }
            }
            Caveat::Operations(ops) => {
                w.u64(ops.len() as u64);
                for op in ops {
                    w.u8(op.code());
                }
            }
            Caveat::ExpiresAt(t) => {
                w.u64(*t);
            }
            Caveat::MaxQuantity(q) => {
                w.u64(*q);
            }
            Caveat::Jobs(kinds) => {
                w.u64(kinds.len() as u64);
                for k in kinds {
                    w.u8(k.code());
                }
            }
        }
    }
}

fn join<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    items.iter().map(show).collect::<Vec<_>>().join(",")
}

/// `rights=read,transfer`, `resources=cid:blake3:…`, `domains=a,b`,
/// `ops=transfer`, `expires=1700000000`, `max-quantity=10`.
impl fmt::Display for Caveat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = match self {
            Caveat::Rights(v) => join(v, |r| r.name().to_string()),
            Caveat::Resources(v) => join(v, |id| id.to_string()),
            Caveat::Domains(v) => join(v, |d| d.as_str().to_string()),
            Caveat::Operations(v) => join(v, |k| operation_name(*k).to_string()),
            Caveat::ExpiresAt(t) => t.to_string(),
            Caveat::MaxQuantity(q) => q.to_string(),
            Caveat::Jobs(v) => join(v, |k| k.name().to_string()),
        };
        write!(f, "{}={value}", self.kind_name())
    }
}

fn parse_list<T>(value: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    value.split(',').map(|item| parse(item.trim())).collect()
}

fn parse_u64(what: &str, value: &str) -> Result<u64, String> {
    value.trim().parse::<u64>().map_err(|e| format!("{what} {value:?} is not an unsigned 64-bit integer: {e}"))
}

impl FromStr for Caveat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, value) = s.split_once('=').ok_or_else(|| {
            format!(
                "caveat {s:?} is not NAME=VALUE (names: rights, resources, domains, ops, expires, max-quantity, jobs)"
            )
        })?;
        let caveat = match name.trim().to_ascii_lowercase().as_str() {
            "rights" => Caveat::Rights(parse_list(value, |r| r.parse())?),
            "resources" => {
                Caveat::Resources(parse_list(value, |id| id.parse::<ResourceId>().map_err(|e| e.to_string()))?)
            }
            "domains" => Caveat::Domains(parse_list(value, DomainId::parse)?),
            "ops" | "operations" => Caveat::Operations(parse_list(value, parse_operation)?),
            "expires" | "expires-at" => Caveat::ExpiresAt(parse_u64("expiry", value)?),
            "max-quantity" | "max_quantity" => Caveat::MaxQuantity(parse_u64("max quantity", value)?),
            "jobs" => Caveat::Jobs(parse_list(value, |k| k.parse())?),
            other => {
                return Err(format!(
                    "unknown caveat {other:?}: expected rights, resources, domains, ops, expires, max-quantity or jobs"
                ))
            }
        };
        Ok(caveat.normalized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_syntax_round_trips_and_normalizes() {
        let id = ResourceId::of_encoding(b"r");
        let cases = [
            Caveat::Rights(vec![Right::Read, Right::Delegate]),
            Caveat::Resources(vec![id]),
            Caveat::Domains(vec![DomainId::new("a"), DomainId::new("b")]),
            Caveat::Operations(vec![OperationKind::Read, OperationKind::Transfer]),
            Caveat::ExpiresAt(1_700_000_000),
            Caveat::MaxQuantity(0),
            Caveat::Rights(Vec::new()),
            Caveat::Jobs(vec![JobKind::Hash, JobKind::Msm]),
        ];
        for caveat in cases {
            assert_eq!(caveat.to_string().parse::<Caveat>().unwrap(), caveat);
        }
        assert_eq!(
            "rights= Transfer,read,read".parse::<Caveat>().unwrap(),
            Caveat::Rights(vec![Right::Read, Right::Transfer])
        );
    }

    #[test]
    fn text_syntax_errors_name_the_problem() {
        let err = |s: &str| s.parse::<Caveat>().unwrap_err();
        assert!(err("rights").contains("NAME=VALUE"));
        assert!(err("colour=red").contains("unknown caveat \"colour\""));
        assert!(err("rights=read,fly").contains("unknown right \"fly\""));
        assert!(err("ops=move").contains("unknown operation kind"));
        assert!(err("expires=-1").contains("not an unsigned 64-bit integer"));
        assert!(err("max-quantity=18446744073709551616").contains("not an unsigned"));
        assert!(err("resources=cid:blake3:00").contains("expected 32 bytes"));
        assert!(err("domains=a,,b").contains("domain name must not be empty"));
    }

    #[test]
    fn mac_encodings_differ_between_kinds_and_values() {
        let encodings = [
            Caveat::ExpiresAt(5).mac_encoding(),
            Caveat::MaxQuantity(5).mac_encoding(),
            Caveat::ExpiresAt(6).mac_encoding(),
            Caveat::Rights(vec![Right::Read]).mac_encoding(),
            Caveat::Operations(vec![OperationKind::Create]).mac_encoding(),
            Caveat::Domains(vec![DomainId::new("ab")]).mac_encoding(),
            Caveat::Domains(vec![DomainId::new("a"), DomainId::new("b")]).mac_encoding(),
            Caveat::Jobs(vec![JobKind::ExecuteBatch]).mac_encoding(),
            Caveat::Jobs(vec![JobKind::ProveOps]).mac_encoding(),
        ];
        for (i, a) in encodings.iter().enumerate() {
            for b in &encodings[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
