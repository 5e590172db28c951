//! RUN: executes a command in the rootless sandbox and turns its changes into a layer.

use hoist_dockerfile::{Instruction, StageScope};

use crate::engine::{Engine, StageState};
use crate::error::{Error, Result};

/// Execute a RUN instruction.
pub(crate) fn dispatch_run(
    _eng: &mut Engine<'_>,
    _state: &mut StageState,
    _scope: &mut StageScope,
    _instr: &Instruction,
) -> Result<()> {
    Err(Error::Unsupported(
        "RUN is not available in this build of hoist yet (the sandbox is not wired in)".into(),
    ))
}
