//! The executor's one entry point: may this context do this to this resource?

use super::ExecutionContext;
use crate::capability::{operation_name, CapabilityToken, KeyRing, Permissions, Right, RootKey};
use crate::error::ExecutionError;
use crate::resource::DomainId;
use crate::resource::{OperationKind, ResourceId};

/// One access an operation makes: per resource it touches or creates.
#[derive(Clone, Copy, Debug)]
pub struct AccessRequest<'a> {
    pub operation: OperationKind,
    pub right: Right,
    /// The resource touched or created; `None` when the operation names none
    /// (a token limited by a Resources caveat then refuses the request).
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
///
/// This verifies the MAC chains on every call; for many accesses under one
/// context, build an [`Authorizer`] once and call [`Authorizer::check`].
pub fn authorize(ctx: &ExecutionContext, keys: &KeyRing, request: &AccessRequest) -> Result<(), ExecutionError> {
    Authorizer::new(ctx, keys).check(request)
}

/// A context's tokens, verified once; [`Authorizer::check`] then decides each
/// access with no hashing, exactly as [`authorize`] would.
pub struct Authorizer<'a> {
    ctx: &'a ExecutionContext,
    main: Result<Permissions, MainRefusal>,
    grants: Vec<Grant<'a>>,
}

enum MainRefusal {
    /// Returned as it is (wrong or unknown domain).
    Domain(ExecutionError),
    /// The chain failed; reported per request as InsufficientCapabilities.
    Chain(String),
}

struct Grant<'a> {
    domain: &'a DomainId,
    /// `None`: the key ring has no root key for the grant's domain.
    verdict: Option<Result<Permissions, String>>,
}

impl<'a> Authorizer<'a> {
    pub fn new(ctx: &'a ExecutionContext, keys: &KeyRing) -> Self {
        let grants = ctx
            .cross_domain_grants
            .iter()
            .map(|grant| Grant {
                domain: &grant.domain,
                verdict: keys.get(&grant.domain).map(|root| grant_permissions(ctx, root, grant)),
            })
            .collect();
        Authorizer { ctx, main: main_permissions(ctx, keys), grants }
    }

    /// Whether the context may make `request`; see [`authorize`].
    pub fn check(&self, request: &AccessRequest) -> Result<(), ExecutionError> {
        let permissions = match &self.main {
            Ok(p) => p,
            Err(MainRefusal::Domain(e)) => return Err(e.clone()),
            Err(MainRefusal::Chain(reason)) => {
                return Err(insufficient(request, format!("capability token rejected: {reason}")))
            }
        };
        permissions
            .check_request(request.operation, request.right, request.resource, request.quantity, self.ctx.timestamp)
            .and_then(|()| permissions.check_domain(request.domain))
            .map_err(|reason| insufficient(request, reason))?;
        if request.domain == &self.ctx.domain_id {
            return Ok(());
        }
        self.check_cross_domain(request)
    }

    fn check_cross_domain(&self, request: &AccessRequest) -> Result<(), ExecutionError> {
        let ctx = self.ctx;
        let denied = |reason: String| ExecutionError::CrossDomainError {
            from: ctx.domain_id.to_string(),
            to: request.domain.to_string(),
            reason,
        };
        let candidates: Vec<&Grant> = self.grants.iter().filter(|g| g.domain == request.domain).collect();
        if candidates.is_empty() {
            return Err(denied(format!(
                "no grant rooted in domain {} among the context's {} cross-domain grants",
                request.domain,
                ctx.cross_domain_grants.len()
            )));
        }
        let mut refusals = Vec::with_capacity(candidates.len());
        for (n, grant) in candidates.iter().enumerate() {
            let permissions = match &grant.verdict {
                None => {
                    return Err(ExecutionError::DomainAccessError {
                        domain: request.domain.to_string(),
                        reason: "unknown domain: the key ring has no root key to verify grants rooted in it"
                            .to_string(),
                    })
                }
                Some(Err(reason)) => {
                    refusals.push(format!("grant {n}: {reason}"));
                    continue;
                }
                Some(Ok(p)) => p,
            };
            match permissions.check_request(
                request.operation,
                request.right,
                request.resource,
                request.quantity,
                ctx.timestamp,
            ) {
                Ok(()) => return Ok(()),
                Err(reason) => refusals.push(format!("grant {n}: {reason}")),
            }
        }
        Err(denied(summarized(&refusals)))
    }
}

/// Refusals shown one by one in an error; past that, counted.
const LISTED_REFUSALS: usize = 3;

fn summarized(refusals: &[String]) -> String {
    let mut text = refusals.iter().take(LISTED_REFUSALS).cloned().collect::<Vec<_>>().join("; ");
    if refusals.len() > LISTED_REFUSALS {
        text.push_str(&format!("; and {} more grants refused", refusals.len() - LISTED_REFUSALS));
    }
    text
}

fn main_permissions(ctx: &ExecutionContext, keys: &KeyRing) -> Result<Permissions, MainRefusal> {
    let token = &ctx.capability_token;
    if token.domain != ctx.domain_id {
        return Err(MainRefusal::Domain(ExecutionError::DomainAccessError {
            domain: ctx.domain_id.to_string(),
            reason: format!(
                "the capability token is rooted in domain {}, not in the context's domain {}",
                token.domain, ctx.domain_id
            ),
        }));
    }
    let root = keys.get(&ctx.domain_id).ok_or_else(|| {
        MainRefusal::Domain(ExecutionError::DomainAccessError {
            domain: ctx.domain_id.to_string(),
            reason: "unknown domain: the key ring has no root key for it".to_string(),
        })
    })?;
    token.verify_chain(root).map_err(|e| MainRefusal::Chain(e.to_string()))?;
    Ok(token.effective())
}

/// A grant's permissions if it verifies and is for the context's domain.
fn grant_permissions(ctx: &ExecutionContext, root: &RootKey, grant: &CapabilityToken) -> Result<Permissions, String> {
    grant.verify_chain(root).map_err(|e| e.to_string())?;
    let permissions = grant.effective();
    match &permissions.domains {
        Some(grantees) if grantees.contains(&ctx.domain_id) => Ok(permissions),
        Some(grantees) => Err(format!(
            "it is a grant for domains {}, not for the requesting domain {}",
            grantees.iter().map(DomainId::as_str).collect::<Vec<_>>().join(","),
            ctx.domain_id
        )),
        None => Err(format!(
            "it has no Domains caveat naming the requesting domain {}, so it is not a grant for it",
            ctx.domain_id
        )),
    }
}
