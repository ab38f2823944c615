//! Read: the register as it is, unchanged.

use crate::error::ExecutionError;
use crate::resource::{OperationKind, ResourceId};
use crate::vm::Role;

use super::super::env::{Env, OpEffects};

pub(super) fn read(env: &mut Env, id: &ResourceId, fx: &mut OpEffects) -> Result<(), ExecutionError> {
    let register = env.load(id)?;
    env.authorize(OperationKind::Read, Some(id), &register.domain, None)?;
    env.run_logic(OperationKind::Read, Role::Read, &register, true, &[], fx)?;
    fx.extras().read = Some(register);
    Ok(())
}
