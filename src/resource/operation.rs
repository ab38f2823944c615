//! The unified operation model: what a batch file and the API submit.

use serde::{Deserialize, Serialize};

use super::DomainId;
use super::{NewResource, ResourceId};
use crate::content_id::ContentId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OperationKind {
    Create,
    Read,
    Update,
    Delete,
    Transfer,
    Verify,
}

impl OperationKind {
    pub const ALL: [OperationKind; 6] = [
        OperationKind::Create,
        OperationKind::Read,
        OperationKind::Update,
        OperationKind::Delete,
        OperationKind::Transfer,
        OperationKind::Verify,
    ];

    /// A stable small number for encodings, VM registers and circuits.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A resource to consume, with the nullifier key that opens its commitment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumedInput {
    pub id: ResourceId,
    #[serde(with = "crate::resource::serde_hex32")]
    pub nullifier_key: [u8; 32],
}

/// Field changes of an Update; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceUpdate {
    #[serde(default)]
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, with = "crate::resource::serde_hex_opt")]
    pub contents: Option<Vec<u8>>,
    #[serde(default)]
    pub controller: Option<crate::resource::Label>,
    #[serde(default)]
    pub state: Option<super::LifecycleState>,
}

/// What a Verify operation checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum VerifyTarget {
    /// The register's current commitment (BLAKE3 of its state encoding) equals this.
    Commitment {
        id: ResourceId,
        #[serde(with = "crate::resource::serde_hex32")]
        commitment: [u8; 32],
    },
    /// The stored proofs of a committed batch verify against the verifying key.
    BatchProof { batch: u64 },
}

/// Deserialized from an object whose `"op"` names the kind (see
/// [`Operation::deserialize`]); serialized the same way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    Create { resource: NewResource },
    Read { id: ResourceId },
    Update { id: ResourceId, changes: ResourceUpdate },
    Delete { input: ConsumedInput },
    Transfer { inputs: Vec<ConsumedInput>, outputs: Vec<NewResource> },
    Verify { target: VerifyTarget },
}

/// The fields of each kind of operation, deserialized from the object
/// without its `"op"`.
mod bodies {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Create {
        pub resource: NewResource,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ById {
        pub id: ResourceId,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Update {
        pub id: ResourceId,
        pub changes: ResourceUpdate,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Delete {
        pub input: ConsumedInput,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Transfer {
        pub inputs: Vec<ConsumedInput>,
        pub outputs: Vec<NewResource>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Verify {
        pub target: VerifyTarget,
    }
}

/// An operation is an object with `"op"` and its kind's fields. Written by
/// hand rather than as serde's internally tagged enum, which buffers the
/// object and so reports a bad value at the end of the operation without
/// its field: here the error names the field (`resource.quantity: …`).
impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut fields = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let kind = match fields.remove("op") {
            Some(serde_json::Value::String(kind)) => kind,
            Some(other) => return Err(D::Error::custom(format!("`op` must be a string, not {other}"))),
            None => return Err(D::Error::missing_field("op")),
        };
        let body = serde_json::Value::Object(fields);
        fn fields_of<T: serde::de::DeserializeOwned, E: Error>(body: serde_json::Value) -> Result<T, E> {
            serde_path_to_error::deserialize(body).map_err(|e| {
                let path = e.path().to_string();
                match path.as_str() {
                    "." => E::custom(e.into_inner()),
                    _ => E::custom(format!("{path}: {}", e.into_inner())),
                }
            })
        }
        Ok(match kind.as_str() {
            "create" => Operation::Create { resource: fields_of::<bodies::Create, _>(body)?.resource },
            "read" => Operation::Read { id: fields_of::<bodies::ById, _>(body)?.id },
            "update" => {
                let b: bodies::Update = fields_of(body)?;
                Operation::Update { id: b.id, changes: b.changes }
            }
            "delete" => Operation::Delete { input: fields_of::<bodies::Delete, _>(body)?.input },
            "transfer" => {
                let b: bodies::Transfer = fields_of(body)?;
                Operation::Transfer { inputs: b.inputs, outputs: b.outputs }
            }
            "verify" => Operation::Verify { target: fields_of::<bodies::Verify, _>(body)?.target },
            other => {
                return Err(D::Error::unknown_variant(
                    other,
                    &["create", "read", "update", "delete", "transfer", "verify"],
                ))
            }
        })
    }
}

impl Operation {
    pub fn kind(&self) -> OperationKind {
        match self {
            Operation::Create { .. } => OperationKind::Create,
            Operation::Read { .. } => OperationKind::Read,
            Operation::Update { .. } => OperationKind::Update,
            Operation::Delete { .. } => OperationKind::Delete,
            Operation::Transfer { .. } => OperationKind::Transfer,
            Operation::Verify { .. } => OperationKind::Verify,
        }
    }

    /// Ids of existing resources the operation reads or changes.
    pub fn touched_ids(&self) -> Vec<ResourceId> {
        match self {
            Operation::Create { .. } => Vec::new(),
            Operation::Read { id } | Operation::Update { id, .. } => vec![*id],
            Operation::Delete { input } => vec![input.id],
            Operation::Transfer { inputs, .. } => inputs.iter().map(|i| i.id).collect(),
            Operation::Verify { target: VerifyTarget::Commitment { id, .. } } => vec![*id],
            Operation::Verify { target: VerifyTarget::BatchProof { .. } } => Vec::new(),
        }
    }

    /// Domains of the resources the operation creates.
    pub fn created_domains(&self) -> Vec<&DomainId> {
        match self {
            Operation::Create { resource } => vec![&resource.domain],
            Operation::Transfer { outputs, .. } => outputs.iter().map(|o| &o.domain).collect(),
            _ => Vec::new(),
        }
    }

    /// Logic programs of the resources the operation creates.
    pub fn created_logic(&self) -> Vec<ContentId> {
        match self {
            Operation::Create { resource } => vec![resource.logic],
            Operation::Transfer { outputs, .. } => outputs.iter().map(|o| o.logic).collect(),
            _ => Vec::new(),
        }
    }
}
