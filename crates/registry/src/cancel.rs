//! Stopping transfers on Ctrl-C.
//!
//! A Ctrl-C handler calls [`interrupt`]; from then on a push writes no further blob
//! and no tag (it fails with [`Error::Interrupted`](crate::Error::Interrupted)), and
//! a running streamed upload is abandoned within a fraction of a second. The
//! registry drops the unreferenced uploads. Process-wide, as a signal is.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Stop every push of this process (see the module docs).
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Whether [`interrupt`] was called.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// `Err(Interrupted)` once [`interrupt`] was called.
pub(crate) fn check() -> crate::Result<()> {
    if interrupted() {
        Err(crate::Error::Interrupted)
    } else {
        Ok(())
    }
}
