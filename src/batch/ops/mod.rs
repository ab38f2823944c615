//! The semantics of each operation kind: load → capability check → lifecycle
//! and input validation → logic programs of every resource touched → effects
//! (held in [`OpEffects`] until the operation succeeds).

mod consume;
mod create;
mod read;
mod update;
mod verify;

use crate::error::ExecutionError;
use crate::resource::Operation;

use super::env::{Env, OpEffects};

pub(super) fn execute(env: &mut Env, op: &Operation, fx: &mut OpEffects) -> Result<(), ExecutionError> {
    super::prove::check_admitted(env.tx, op)?;
    match op {
        Operation::Create { resource } => create::create(env, resource, fx),
        Operation::Read { id } => read::read(env, id, fx),
        Operation::Update { id, changes } => update::update(env, id, changes, fx),
        Operation::Delete { input } => consume::delete(env, input, fx),
        Operation::Transfer { inputs, outputs } => consume::transfer(env, inputs, outputs, fx),
        Operation::Verify { target } => verify::verify(env, target, fx),
    }
}
