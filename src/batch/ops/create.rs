//! Create: a new Active resource; its id is a pending hash request.

use std::sync::Arc;

use crate::content_id::ContentId;
use crate::error::ExecutionError;
use crate::resource::{NewResource, OperationKind};
use crate::vm::Role;

use super::super::env::{Env, OpEffects};

pub(super) fn create(env: &mut Env, new: &NewResource, fx: &mut OpEffects) -> Result<(), ExecutionError> {
    env.authorize(OperationKind::Create, None, &new.domain, Some(new.quantity))?;
    // The logic sees the resource as it will be; its id is unknown until the flush.
    let provisional = Arc::new(new.clone().into_register(ContentId::default()));
    env.run_logic(OperationKind::Create, Role::Created, &provisional, false, &[], fx)?;
    env.effects.creates.push(env.pool.hash_with(|buf| new.write_id_encoding(buf)));
    env.new_registers.push(provisional);
    Ok(())
}
