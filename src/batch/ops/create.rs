//! Create: a new Active resource; its id is a pending hash request.

use std::sync::Arc;

use crate::content_id::ContentId;
use crate::error::ExecutionError;
use crate::resource::{NewResource, OperationKind};
use crate::vm::Role;

use super::super::env::{Env, OpEffects};

/// An error about a resource not created yet names it by the id it would
/// have (its logic saw a zero id: ids are hash requests resolved later).
/// Hashed here, on the failure path only.
pub(super) fn named_new(err: ExecutionError, new: &NewResource) -> ExecutionError {
    match err {
        ExecutionError::InvalidResourceState { id, state, reason } if id == ContentId::default() => {
            ExecutionError::InvalidResourceState { id: ContentId::of_encoding(&new.id_encoding()), state, reason }
        }
        other => other,
    }
}

pub(super) fn create(env: &mut Env, new: &NewResource, fx: &mut OpEffects) -> Result<(), ExecutionError> {
    env.authorize(OperationKind::Create, None, &new.domain, Some(new.quantity))?;
    // The logic sees the resource as it will be; its id is unknown until the flush.
    let provisional = Arc::new(new.clone().into_register(ContentId::default()));
    env.run_logic(OperationKind::Create, Role::Created, &provisional, false, &[], fx).map_err(|e| named_new(e, new))?;
    env.effects.creates.push(env.pool.hash_with(|buf| new.write_id_encoding(buf)));
    env.new_registers.push(provisional);
    Ok(())
}
