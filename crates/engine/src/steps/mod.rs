//! Instruction handlers, one family per file: [`config`] (ENV, ARG, LABEL, USER, CMD,
//! …: the image config only), [`workdir`], [`copy`] (COPY and heredocs), [`add`] and
//! [`run`]. Each takes the step's context and the stage state, and says whether its
//! result came from the step cache.
//!
//! Every handler chains the stage's key: metadata steps through [`chain`], layer
//! steps through [`crate::engine::Engine::layer_step`] and RUN through its own input
//! list — all derived by [`crate::key::step_key`].

pub(crate) mod add;
pub(crate) mod config;
pub(crate) mod copy;
pub(crate) mod run;
pub(crate) mod workdir;

use hoist_dockerfile::InstructionKind;

use crate::error::Result;
use crate::execute::StepCx;
use crate::stage::StageState;

/// Run one planned step on `state`; `Ok(true)` when its result came from the cache.
pub(crate) fn dispatch(cx: &StepCx<'_, '_>, state: &mut StageState) -> Result<bool> {
    let instr = &cx.step.instr;
    match &instr.kind {
        InstructionKind::Workdir { path } => workdir::workdir(cx, state, path),
        InstructionKind::Copy { .. } => copy::copy(cx, state),
        InstructionKind::Add { .. } => add::add(cx, state),
        InstructionKind::Run { .. } => run::dispatch_run(cx, state),
        _ => {
            config::apply(cx, state)?;
            chain(cx, state)?;
            Ok(false)
        }
    }
}

/// Fold a step that makes no layer into the stage's key (so what follows depends on
/// it: an ENV changes every later RUN's key even where the RUN's own inputs hide it).
pub(crate) fn chain(cx: &StepCx<'_, '_>, state: &mut StageState) -> Result<()> {
    let platform = state.config.platform();
    let parent = state.key;
    state.key = crate::key::step_key(
        &state.key,
        &cx.step.instr.kind,
        &cx.eng.settings(&platform),
        &[],
        &cx.eng.hasher,
    )?;
    cx.eng.record_step(parent, state.key, None);
    Ok(())
}
