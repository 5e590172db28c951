//! The executor: runs the planned stages in parallel, every stage after its base, at
//! most `jobs` steps at a time.
//!
//! A stage gets a thread once its base is done (so a chain of stages holds one thread
//! at a time); steps within a stage run in order. A step that reads another stage
//! (`COPY --from`, `RUN --mount=from=`) waits for it without holding a job slot, so no
//! schedule can deadlock (the plan has no cycles). Results do not depend on the
//! schedule: each step's result is a function of its key, whatever ran beside it, so
//! the digest is the same for every `--jobs`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::plan::{Base, Plan};
use crate::stage::StageState;

/// A stage's result as other stages see it (its error as text: the error itself is
/// reported once, by the scheduler).
type Slot = (
    Mutex<Option<std::result::Result<Arc<StageState>, String>>>,
    Condvar,
);

/// The results of stages, filled in as they finish; readers wait.
pub(crate) struct Results {
    slots: Vec<Slot>,
}

impl Results {
    fn new(n: usize) -> Results {
        Results {
            slots: (0..n).map(|_| (Mutex::new(None), Condvar::new())).collect(),
        }
    }

    fn set(&self, i: usize, r: std::result::Result<Arc<StageState>, String>) {
        let (m, c) = &self.slots[i];
        *m.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        c.notify_all();
    }

    /// Wait for stage `i`'s result.
    pub fn wait(&self, i: usize) -> Result<Arc<StageState>> {
        let (m, c) = &self.slots[i];
        let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = g.as_ref() {
                return r.clone().map_err(Error::DependencyFailed);
            }
            g = c.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A counting semaphore: at most `n` steps execute at once.
pub(crate) struct Jobs {
    free: Mutex<usize>,
    cond: Condvar,
}

/// A held job slot.
pub(crate) struct JobSlot<'a>(&'a Jobs);

impl Jobs {
    pub fn new(n: usize) -> Jobs {
        Jobs {
            free: Mutex::new(n.max(1)),
            cond: Condvar::new(),
        }
    }

    /// Take a slot (waiting for one).
    pub fn acquire(&self) -> JobSlot<'_> {
        let mut f = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *f == 0 {
            f = self.cond.wait(f).unwrap_or_else(|e| e.into_inner());
        }
        *f -= 1;
        JobSlot(self)
    }
}

impl Drop for JobSlot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.cond.notify_one();
    }
}

/// What a running stage shares with the others.
pub(crate) struct Shared<'p> {
    pub plan: &'p Plan,
    pub results: Results,
    pub jobs: Jobs,
    /// Set when a stage failed: the others stop before their next step.
    pub abort: AtomicBool,
}

/// Run every stage of `plan` (at most `jobs` steps at once) and return the target's
/// state. The first error to happen is returned; stages that fail because a stage they
/// need failed are not reported again.
pub(crate) fn run(eng: &Engine<'_>, plan: &Plan, jobs: usize) -> Result<Arc<StageState>> {
    let shared = Shared {
        plan,
        results: Results::new(plan.stages.len()),
        jobs: Jobs::new(jobs),
        abort: AtomicBool::new(false),
    };
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<usize>();
        let mut started = BTreeSet::new();
        let spawn = |i: usize, started: &mut BTreeSet<usize>| {
            started.insert(i);
            let tx = tx.clone();
            let shared = &shared;
            let first_error = &first_error;
            std::thread::Builder::new()
                .name(format!("stage-{i}"))
                .spawn_scoped(s, move || {
                    let r = crate::execute::stage(eng, shared, i);
                    match r {
                        Ok(st) => shared.results.set(i, Ok(st)),
                        Err(e) => {
                            shared.abort.store(true, Ordering::SeqCst);
                            let msg = e.to_string();
                            if !matches!(e, Error::DependencyFailed(_)) {
                                let mut fe = first_error.lock().unwrap_or_else(|e| e.into_inner());
                                if fe.is_none() {
                                    *fe = Some(e);
                                }
                            }
                            shared.results.set(i, Err(msg));
                        }
                    }
                    let _ = tx.send(i);
                })
                .expect("spawn a stage thread");
        };
        for &i in &plan.order {
            if !matches!(plan.stage(i).base, Base::Stage(_)) {
                spawn(i, &mut started);
            }
        }
        let mut done = 0;
        while done < plan.order.len() {
            let Ok(finished) = rx.recv() else { break };
            done += 1;
            // Children of a finished stage can start; children of a failed one fail
            // without running (and so do theirs).
            let mut ready = vec![finished];
            while let Some(p) = ready.pop() {
                let failed = shared.results.wait(p).is_err();
                for &c in &plan.order {
                    if started.contains(&c) || plan.stage(c).base != Base::Stage(p) {
                        continue;
                    }
                    if failed {
                        started.insert(c);
                        shared
                            .results
                            .set(c, Err(format!("stage {} failed", plan.stage(p).label)));
                        done += 1;
                        ready.push(c);
                    } else {
                        spawn(c, &mut started);
                    }
                }
            }
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    shared.results.wait(plan.target)
}
