//! The executor's one entry point: may this context do this to this resource?

use super::caveat::{operation_name, Right};
use super::keys::KeyRing;
use super::token::CapabilityToken;
use crate::context::{DomainId, ExecutionContext};
use crate::error::ExecutionError;
use crate::resource::{OperationKind, ResourceId};

/// One access an operation makes: per resource it touches or creates.
#[derive(Clone, Copy, Debug)]
pub struct AccessRequest<'a> {
    pub operation: OperationKind,
    pub right: Right,
    /// The resource touched or created; `None` when the operation names none.
    pub resource: Option<&'a ResourceId>,
    /// The domain of that resource.
    pub domain: &'a DomainId,
    /// The quantity moved or created, where the operation has one.
    pub quantity: Option<u64>,
}

impl<'a> AccessRequest<'a> {
    /// A request needing the right that `operation` implies.
    pub fn new(operation: OperationKind, domain: &'a DomainId) -> Self {
        AccessRequest { operation, right: required_right(operation), resource: None, domain, quantity: None }
    }
}

/// The right each operation kind needs.
pub fn required_right(kind: OperationKind) -> Right {
    match kind {
        OperationKind::Create | OperationKind::Update => Right::Write,
        OperationKind::Read => Right::Read,
        OperationKind::Delete => Right::Delete,
        OperationKind::Transfer => Right::Transfer,
        OperationKind::Verify => Right::Verify,
    }
}

fn insufficient(request: &AccessRequest, reason: String) -> ExecutionError {
    ExecutionError::InsufficientCapabilities { operation: describe(request), reason }
}

fn describe(request: &AccessRequest) -> String {
    match request.resource {
        Some(id) => format!("{} of {id} in domain {}", operation_name(request.operation), request.domain),
        None => format!("{} in domain {}", operation_name(request.operation), request.domain),
    }
}

/// Authorize one access of a batch running under `ctx`.
///
/// The context's token must be rooted in `ctx.domain_id` and verify against
/// that domain's root key; then every caveat must allow the request at
/// `ctx.timestamp`. A request into another domain additionally needs a grant
/// in `ctx.cross_domain_grants`: a token rooted in the target domain, valid
/// under its root key, whose Domains caveat names `ctx.domain_id` and whose
/// other caveats allow the request.
pub fn authorize(ctx: &ExecutionContext, keys: &KeyRing, request: &AccessRequest) -> Result<(), ExecutionError> {
    let token = &ctx.capability_token;
    if token.domain != ctx.domain_id {
        return Err(ExecutionError::DomainAccessError {
            domain: ctx.domain_id.to_string(),
            reason: format!(
                "the capability token is rooted in domain {}, not in the context's domain {}",
                token.domain, ctx.domain_id
            ),
        });
    }
    let root = keys.get(&ctx.domain_id).ok_or_else(|| ExecutionError::DomainAccessError {
        domain: ctx.domain_id.to_string(),
        reason: "unknown domain: the key ring has no root key for it".to_string(),
    })?;
    token.verify_chain(root).map_err(|e| insufficient(request, format!("capability token rejected: {e}")))?;
    let permissions = token.effective();
    permissions
        .check_request(request.operation, request.right, request.resource, request.quantity, ctx.timestamp)
        .and_then(|()| permissions.check_domain(request.domain))
        .map_err(|reason| insufficient(request, reason))?;

    if request.domain == &ctx.domain_id {
        return Ok(());
    }
    authorize_cross_domain(ctx, keys, request)
}

fn authorize_cross_domain(
    ctx: &ExecutionContext,
    keys: &KeyRing,
    request: &AccessRequest,
) -> Result<(), ExecutionError> {
    let denied = |reason: String| ExecutionError::CrossDomainError {
        from: ctx.domain_id.to_string(),
        to: request.domain.to_string(),
        reason,
    };
    let candidates: Vec<&CapabilityToken> =
        ctx.cross_domain_grants.iter().filter(|g| &g.domain == request.domain).collect();
    if candidates.is_empty() {
        return Err(denied(format!(
            "no grant rooted in domain {} among the context's {} cross-domain grants",
            request.domain,
            ctx.cross_domain_grants.len()
        )));
    }
    let root = keys.get(request.domain).ok_or_else(|| ExecutionError::DomainAccessError {
        domain: request.domain.to_string(),
        reason: "unknown domain: the key ring has no root key to verify grants rooted in it".to_string(),
    })?;
    let mut refusals = Vec::with_capacity(candidates.len());
    for (n, grant) in candidates.iter().enumerate() {
        match check_grant(ctx, root, grant, request) {
            Ok(()) => return Ok(()),
            Err(reason) => refusals.push(format!("grant {n}: {reason}")),
        }
    }
    Err(denied(refusals.join("; ")))
}

fn check_grant(
    ctx: &ExecutionContext,
    root: &super::RootKey,
    grant: &CapabilityToken,
    request: &AccessRequest,
) -> Result<(), String> {
    grant.verify_chain(root).map_err(|e| e.to_string())?;
    let permissions = grant.effective();
    match &permissions.domains {
        Some(grantees) if grantees.contains(&ctx.domain_id) => {}
        Some(_) => return Err(permissions.check_domain(&ctx.domain_id).err().unwrap_or_default()),
        None => {
            return Err(format!(
                "it has no Domains caveat naming the requesting domain {}, so it is not a grant for it",
                ctx.domain_id
            ))
        }
    }
    permissions.check_request(request.operation, request.right, request.resource, request.quantity, ctx.timestamp)
}
