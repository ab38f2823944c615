//! Transfer and Delete: consuming inputs (the nullifier-key opening is
//! checked here; the nullifier is a pending hash request, checked against
//! the spent set at the flush), and for Transfer creating outputs with
//! quantity conserved per fungibility domain.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::content_id::ContentId;
use crate::error::ExecutionError;
use crate::resource::{
    nullifier_input, ConsumedInput, LifecycleState, NewResource, OperationKind, ResourceRegister, NULLIFIER_CONTEXT,
};
use crate::vm::Role;

use super::super::env::{Consumption, Env, OpEffects};

pub(super) fn delete(env: &mut Env, input: &ConsumedInput, fx: &mut OpEffects) -> Result<(), ExecutionError> {
    let register = env.load(&input.id)?;
    env.authorize(OperationKind::Delete, Some(&input.id), &register.domain, Some(register.quantity))?;
    check_consumable(&register)?;
    env.check_opening(&register, &input.nullifier_key)?;
    env.run_logic(OperationKind::Delete, Role::Consumed, &register, true, &[], fx)?;
    consume(env, register, input);
    Ok(())
}

pub(super) fn transfer(
    env: &mut Env,
    inputs: &[ConsumedInput],
    outputs: &[NewResource],
    fx: &mut OpEffects,
) -> Result<(), ExecutionError> {
    if inputs.is_empty() {
        return Err(ExecutionError::ResourceNotFound {
            what: "an input to consume: a transfer needs at least one and this one names none".into(),
        });
    }
    let mut registers: Vec<Arc<ResourceRegister>> = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let register = env.load(&input.id)?;
        if inputs[..i].iter().any(|earlier| earlier.id == input.id) {
            return Err(ExecutionError::InvalidResourceState {
                id: input.id,
                state: register.state,
                reason: "named twice among this transfer's inputs: it can be consumed only once".into(),
            });
        }
        registers.push(register);
    }
    let moved = registers.iter().map(|r| r.quantity as u128).sum::<u128>().min(u64::MAX as u128) as u64;
    for r in &registers {
        env.authorize(OperationKind::Transfer, Some(&r.id), &r.domain, Some(moved))?;
    }
    for o in outputs {
        env.authorize(OperationKind::Transfer, None, &o.domain, Some(moved))?;
    }
    for r in &registers {
        check_consumable(r)?;
    }
    check_conservation(&registers, outputs)?;
    for (register, input) in registers.iter().zip(inputs) {
        env.check_opening(register, &input.nullifier_key)?;
    }

    let provisional: Vec<Arc<ResourceRegister>> =
        outputs.iter().map(|o| Arc::new(o.clone().into_register(ContentId::default()))).collect();
    let all: Vec<&ResourceRegister> = registers.iter().chain(&provisional).map(|r| &**r).collect();
    let mut others: Vec<&ResourceRegister> = Vec::with_capacity(all.len());
    for (i, subject) in all.iter().enumerate() {
        others.clear();
        others.extend(all.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, r)| *r));
        let (role, known) = if i < registers.len() { (Role::Consumed, true) } else { (Role::Created, false) };
        env.run_logic(OperationKind::Transfer, role, subject, known, &others, fx).map_err(|e| match known {
            true => e,
            false => super::create::named_new(e, &outputs[i - registers.len()]),
        })?;
    }
    for (register, input) in registers.into_iter().zip(inputs) {
        consume(env, register, input);
    }
    for o in outputs {
        env.effects.creates.push(env.pool.hash_with(|buf| o.write_id_encoding(buf)));
    }
    env.new_registers.extend(provisional);
    Ok(())
}

/// Only a state the lifecycle lets move to Consumed can be consumed.
fn check_consumable(r: &ResourceRegister) -> Result<(), ExecutionError> {
    if r.state.can_transition_to(LifecycleState::Consumed) {
        Ok(())
    } else {
        Err(ExecutionError::InvalidResourceState {
            id: r.id,
            state: r.state,
            reason: format!("{} resource cannot be consumed", r.state.with_article()),
        })
    }
}

fn check_conservation(inputs: &[Arc<ResourceRegister>], outputs: &[NewResource]) -> Result<(), ExecutionError> {
    // The common case, one fungibility domain throughout, needs no map.
    let domain = &inputs[0].fungibility_domain;
    if inputs.iter().all(|r| r.fungibility_domain == *domain) && outputs.iter().all(|o| o.fungibility_domain == *domain)
    {
        let sum_in: u128 = inputs.iter().map(|r| r.quantity as u128).sum();
        let sum_out: u128 = outputs.iter().map(|o| o.quantity as u128).sum();
        if sum_in == sum_out {
            return Ok(());
        }
    }
    let mut balance: BTreeMap<&str, (u128, u128)> = BTreeMap::new();
    for r in inputs {
        balance.entry(&r.fungibility_domain).or_default().0 += r.quantity as u128;
    }
    for o in outputs {
        balance.entry(&o.fungibility_domain).or_default().1 += o.quantity as u128;
    }
    match balance.iter().find(|(_, (i, o))| i != o) {
        None => Ok(()),
        Some((domain, (i, o))) => Err(ExecutionError::InvalidResourceState {
            id: inputs[0].id,
            state: inputs[0].state,
            reason: format!("quantity not conserved in fungibility domain {domain:?}: inputs hold {i}, outputs {o}"),
        }),
    }
}

fn consume(env: &mut Env, register: Arc<ResourceRegister>, input: &ConsumedInput) {
    let nullifier = env.pool.derive_key(NULLIFIER_CONTEXT, nullifier_input(&input.nullifier_key, &register.id));
    env.effects.consumes.push(Consumption { register, nullifier_key: input.nullifier_key, nullifier });
}
