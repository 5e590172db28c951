//! Running one stage: its base, then its steps in order, each through its handler.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::plan::{Base, Source, StepPlan};
use crate::progress::Event;
use crate::schedule::Shared;
use crate::stage::StageState;

/// Where `COPY --from` / `RUN --mount=from=` read.
pub(crate) enum CopyFrom {
    /// A local directory (named context).
    Dir(std::path::PathBuf),
    /// A stage or image.
    Stage(Arc<StageState>),
}

/// What a step handler gets: the engine, the planned step and the results of the
/// stages and images it reads.
pub(crate) struct StepCx<'e, 'a> {
    pub eng: &'e Engine<'a>,
    pub step: &'e StepPlan,
    sources: BTreeMap<String, CopyFrom>,
}

impl StepCx<'_, '_> {
    /// The source named `name` in `--from=` / `from=`.
    pub fn source(&self, name: &str) -> Result<&CopyFrom> {
        self.sources.get(name).ok_or_else(|| {
            Error::Invalid(format!(
                "{name:?} is not a planned source of this step (a bug in the planner)"
            ))
        })
    }
}

/// Build stage `i` of the plan.
pub(crate) fn stage(eng: &Engine<'_>, shared: &Shared<'_>, i: usize) -> Result<Arc<StageState>> {
    let sp = shared.plan.stage(i);
    let progress = eng.progress;
    let base = match &sp.base {
        Base::Stage(p) => Some(shared.results.wait(*p)?),
        _ => None,
    };
    let mut state = {
        let _slot = shared.jobs.acquire();
        progress.event(Event::Start {
            id: sp.from_id,
            name: &sp.from_name,
        });
        let started = Instant::now();
        let r = match (&sp.base, base) {
            (Base::Scratch, _) => Ok(StageState::scratch(&sp.platform)),
            (Base::Stage(_), Some(b)) => Ok(b.as_base()),
            (Base::Image(r), _) => eng.import_image(r, &sp.platform).map(|s| s.as_base()),
            (Base::Stage(_), None) => unreachable!("the base stage was waited for"),
        };
        match r {
            Ok(s) => {
                progress.event(Event::Done {
                    id: sp.from_id,
                    cached: false,
                    elapsed: started.elapsed(),
                });
                s
            }
            Err(e) => {
                let e = e.at(&sp.from_loc);
                progress.event(Event::Failed {
                    id: sp.from_id,
                    message: &e.to_string(),
                });
                return Err(e);
            }
        }
    };
    // Layers of the target's image are offered to the resolver as they are made
    // (build while pushing, see crate::early_push).
    let offer_layers = shared.plan.in_target_image(i);
    for step in &sp.steps {
        if crate::interrupted() {
            return Err(Error::Interrupted);
        }
        if shared.abort.load(Ordering::SeqCst) {
            return Err(Error::DependencyFailed(
                "cancelled: another stage failed".into(),
            ));
        }
        // Wait for what the step reads before taking a job slot.
        let mut sources = BTreeMap::new();
        for (name, src) in &step.sources {
            let s = match src {
                Source::Stage(j) => CopyFrom::Stage(shared.results.wait(*j)?),
                Source::Dir(d) => CopyFrom::Dir(d.clone()),
                Source::Image(r) => match eng.import_image(r, &sp.platform) {
                    Ok(s) => CopyFrom::Stage(s),
                    // `--from=name` that is no stage: say so before the pull error.
                    Err(e) if r == name => {
                        let e = crate::lint::no_such_stage_named(e, name, &shared.plan.names);
                        return Err(fail(eng, step, e));
                    }
                    Err(e) => return Err(fail(eng, step, e)),
                },
            };
            sources.insert(name.clone(), s);
        }
        let _slot = shared.jobs.acquire();
        let cx = StepCx { eng, step, sources };
        progress.event(Event::Start {
            id: step.id,
            name: &step.name,
        });
        let started = Instant::now();
        let layers_before = state.layers.len();
        match crate::steps::dispatch(&cx, &mut state) {
            Ok(cached) => progress.event(Event::Done {
                id: step.id,
                cached,
                elapsed: started.elapsed(),
            }),
            Err(e) => return Err(fail(eng, step, e)),
        }
        if offer_layers && state.layers.len() > layers_before {
            if let Some(l) = state.layers.last() {
                eng.resolver.layer_ready(&eng.store, &l.desc);
            }
        }
    }
    Ok(Arc::new(state))
}

fn fail(eng: &Engine<'_>, step: &StepPlan, e: Error) -> Error {
    let e = e.at(&step.loc);
    eng.progress.event(Event::Failed {
        id: step.id,
        message: &e.to_string(),
    });
    e
}
