//! Update: change fields and/or the lifecycle state, bumping the version.
//!
//! Field changes (metadata, contents, controller) need an Active resource; a
//! state change must be allowed by the lifecycle table. Consuming is not an
//! update: it needs the nullifier key (Delete or Transfer).

use crate::error::ExecutionError;
use std::sync::Arc;

use crate::resource::{LifecycleState, OperationKind, ResourceId, ResourceRegister, ResourceUpdate};
use crate::vm::Role;

use super::super::env::{Env, OpEffects};

pub(super) fn update(
    env: &mut Env,
    id: &ResourceId,
    changes: &ResourceUpdate,
    fx: &mut OpEffects,
) -> Result<(), ExecutionError> {
    let before = env.load(id)?;
    env.authorize(OperationKind::Update, Some(id), &before.domain, None)?;
    let invalid = |reason: String| ExecutionError::InvalidResourceState { id: *id, state: before.state, reason };
    let changes_fields = changes.metadata.is_some() || changes.contents.is_some() || changes.controller.is_some();
    if changes_fields && before.state != LifecycleState::Active {
        return Err(invalid("only an Active resource's fields can change".into()));
    }
    if let Some(to) = changes.state {
        if to == LifecycleState::Consumed {
            return Err(invalid("an update cannot consume: use delete or transfer with the nullifier key".into()));
        }
        if !before.state.can_transition_to(to) {
            return Err(invalid(format!("the lifecycle does not allow {:?} -> {to:?}", before.state)));
        }
    }
    let mut after = ResourceRegister::clone(&before);
    if let Some(m) = &changes.metadata {
        after.metadata = m.clone();
    }
    if let Some(c) = &changes.contents {
        after.contents = c.clone();
    }
    if let Some(c) = &changes.controller {
        after.controller = c.clone();
    }
    if let Some(s) = changes.state {
        after.state = s;
    }
    after.version = before.version.checked_add(1).ok_or_else(|| invalid("version would overflow u64".into()))?;
    env.run_logic(OperationKind::Update, Role::UpdatedBefore, &before, true, &[&after], fx)?;
    env.run_logic(OperationKind::Update, Role::UpdatedAfter, &after, true, &[&before], fx)?;
    fx.updates.push((before, Arc::new(after)));
    Ok(())
}
