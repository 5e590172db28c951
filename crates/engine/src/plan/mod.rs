//! Planning: the Dockerfile becomes a graph of stages and steps before anything runs.
//!
//! ```text
//!   Dockerfile ──parse──▶ stages ──expand FROM (global ARGs)──▶ bases: scratch | stage | image
//!        │                                  │
//!        │      edges: FROM stage, COPY --from, RUN --mount=from=, ONBUILD triggers
//!        ▼                                  ▼
//!   reachable from the target ──▶ base images resolved (metadata only) ──▶ triggers added
//!        ▼
//!   topological order (cycles refused) ──▶ every instruction expanded with its stage's
//!   scope (ARG/ENV, base image env) ──▶ [`Plan`]: stages in build order, each a list of
//!   [`StepPlan`]s with the stages and images it reads.
//! ```
//!
//! Everything the Dockerfile can get wrong about the graph (an unknown or later stage in
//! `COPY --from`, a variable in `--from`, a cycle, an undefined target) is an error here,
//! with file:line, before any step runs. Stages the target does not need are not planned
//! further and never run, as with BuildKit.

mod graph;

use std::collections::{BTreeMap, BTreeSet};

use hoist_dockerfile::{
    Dockerfile, GlobalScope, Instruction, InstructionKind, MountOptions, Stage, StageScope,
};
use hoist_image::Platform;

use crate::error::{Error, Location, Result};
use crate::options::NamedContext;

pub(crate) use graph::topological_order;

/// At most this many stages in one Dockerfile (the parser's bound: every stage is a node
/// of the graph and a thread of the executor at most; real files have a handful).
pub const MAX_STAGES: usize = hoist_dockerfile::MAX_STAGES;

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `FROM scratch`.
    Scratch,
    /// Another stage of the same Dockerfile.
    Stage(usize),
    /// An image (registry, layout, archive, or a named context's image).
    Image(String),
}

/// Something a step reads that another node of the graph provides.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// A stage's result.
    Stage(usize),
    /// An image's file system.
    Image(String),
    /// A named build context that is a directory.
    Dir(std::path::PathBuf),
}

/// One step of a stage: an instruction of the Dockerfile (or an ONBUILD trigger),
/// expanded.
#[derive(Debug, Clone)]
pub struct StepPlan {
    /// Progress id (unique in the build).
    pub id: usize,
    /// Progress name (`[stage 2/5] COPY a /b`).
    pub name: String,
    /// Where it is in the Dockerfile.
    pub loc: Location,
    /// The instruction with every field BuildKit expands expanded.
    pub instr: Instruction,
    /// The environment a RUN sees at this point (ENV, ARGs, proxy args).
    pub run_env: Vec<String>,
    /// The ARGs in scope as a RUN's history lists them.
    pub history_args: Vec<String>,
    /// The `COPY --from` / `RUN --mount=from=` sources, by the name written.
    pub sources: BTreeMap<String, Source>,
}

/// One stage of the plan.
#[derive(Debug, Clone)]
pub struct StagePlan {
    /// Index in the Dockerfile.
    pub index: usize,
    /// The stage's name or `stage-N`.
    pub label: String,
    /// What it starts from.
    pub base: Base,
    /// The expanded base name (for progress and errors).
    pub base_name: String,
    /// The platform it is built for.
    pub platform: Platform,
    /// The `FROM` line.
    pub from_loc: Location,
    /// Progress id and name of its `FROM` step.
    pub from_id: usize,
    /// Progress name of its `FROM` step.
    pub from_name: String,
    /// Its steps: ONBUILD triggers of the base first, then its instructions.
    pub steps: Vec<StepPlan>,
    /// The ONBUILD expressions it records (for stages built FROM it).
    pub onbuild: Vec<String>,
    /// The environment its config ends with (the base env of stages built FROM it).
    pub config_env: Vec<String>,
    /// ARGs it declares.
    pub declared_args: BTreeSet<String>,
}

impl StagePlan {
    /// The stages this stage needs before it can finish: its base and every stage a step
    /// reads.
    pub fn stage_deps(&self) -> BTreeSet<usize> {
        let mut d = BTreeSet::new();
        if let Base::Stage(i) = self.base {
            d.insert(i);
        }
        for s in &self.steps {
            for src in s.sources.values() {
                if let Source::Stage(i) = src {
                    d.insert(*i);
                }
            }
        }
        d
    }
}

/// What the planner needs to know about a base image: its config's environment and
/// ONBUILD triggers. The engine provides it (from the image's config, fetched once).
pub trait BaseInfo {
    /// `(env, onbuild)` of `reference` for `platform`.
    fn base_info(&self, reference: &str, platform: &Platform)
        -> Result<(Vec<String>, Vec<String>)>;
}

/// The build plan of one target for one platform.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Planned stages, by Dockerfile index (`None`: not needed by the target).
    pub stages: Vec<Option<StagePlan>>,
    /// The target stage.
    pub target: usize,
    /// The stages to build, every stage after the stages it needs.
    pub order: Vec<usize>,
    /// Every stage's name, or its index for unnamed ones (for messages).
    pub names: Vec<String>,
}

impl Plan {
    /// The planned stage `i` (it must be needed).
    pub fn stage(&self, i: usize) -> &StagePlan {
        self.stages[i].as_ref().expect("a planned stage")
    }

    /// Whether stage `i`'s layers end up in the target's image: it is the target or
    /// a stage the target is built `FROM`, directly or through others.
    pub fn in_target_image(&self, i: usize) -> bool {
        let mut at = self.target;
        for _ in 0..=self.stages.len() {
            if at == i {
                return true;
            }
            match self
                .stages
                .get(at)
                .and_then(Option::as_ref)
                .map(|s| &s.base)
            {
                Some(Base::Stage(p)) => at = *p,
                _ => return false,
            }
        }
        false
    }

    /// Every ARG any needed stage declares.
    pub fn declared_args(&self) -> BTreeSet<String> {
        self.stages
            .iter()
            .flatten()
            .flat_map(|s| s.declared_args.iter().cloned())
            .collect()
    }

    /// Number of steps (FROMs included).
    pub fn step_count(&self) -> usize {
        self.stages
            .iter()
            .flatten()
            .map(|s| s.steps.len() + 1)
            .sum()
    }
}

/// Inputs of [`plan`].
pub struct PlanInput<'a> {
    /// The parsed Dockerfile.
    pub df: &'a Dockerfile,
    /// Its name in messages.
    pub df_name: &'a str,
    /// Its global scope (build args, meta ARGs, platform args).
    pub global: &'a GlobalScope,
    /// `--target`.
    pub target: Option<&'a str>,
    /// The platform the target is built for.
    pub platform: &'a Platform,
    /// `--build-context` names.
    pub named_contexts: &'a BTreeMap<String, NamedContext>,
}

fn location(file: &str, line: usize, text: &str) -> Location {
    Location {
        file: file.to_string(),
        line,
        text: text.lines().next().unwrap_or_default().to_string(),
    }
}

fn stage_label(stage: &Stage, idx: usize) -> String {
    stage.name.clone().unwrap_or_else(|| format!("stage-{idx}"))
}

/// The stage named `name` (case-insensitively, as BuildKit's `findStateByName`), or
/// the stage of that index.
fn stage_by_name_or_index(df: &Dockerfile, name: &str) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    if let Some(i) = df
        .stages
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        return Some(i);
    }
    name.parse::<usize>().ok()
}

/// ONBUILD triggers per stage: each parsed instruction and the sources it reads.
type Triggers = BTreeMap<usize, Vec<(Instruction, BTreeMap<String, Source>)>>;

/// Where a stage's base comes from, before anything is resolved.
struct RawStage {
    base: Base,
    base_name: String,
    platform: Platform,
    from_loc: Location,
    /// Sources of its own instructions, per instruction index.
    sources: Vec<BTreeMap<String, Source>>,
}

/// Plan the build of `input.target` (default: the last stage).
pub fn plan(input: &PlanInput<'_>, bases: &dyn BaseInfo) -> Result<Plan> {
    let df = input.df;
    let file = input.df_name;
    if df.stages.is_empty() {
        return Err(Error::Dockerfile(format!(
            "{file}: dockerfile contains no stages to build (no FROM instruction)"
        )));
    }
    if df.stages.len() > MAX_STAGES {
        return Err(Error::Dockerfile(format!(
            "{file}: {} stages; hoist builds at most {MAX_STAGES} stages from one Dockerfile",
            df.stages.len()
        )));
    }
    let target = target_index(df, input.target)?;
    let mut raw = Vec::with_capacity(df.stages.len());
    for (i, stage) in df.stages.iter().enumerate() {
        raw.push(raw_stage(input, i, stage)?);
    }

    // Reachability, with ONBUILD triggers (which may read more stages) found as bases
    // are resolved, until nothing new turns up (BuildKit's resolveStages loop).
    let mut triggers: Triggers = BTreeMap::new();
    let mut base_env: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut image_onbuild: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut reachable;
    loop {
        reachable = reachable_from(target, &raw, &triggers);
        let mut new = false;
        for &i in &reachable {
            if let Base::Image(r) = &raw[i].base {
                if let std::collections::btree_map::Entry::Vacant(e) = base_env.entry(i) {
                    let (env, onbuild) = bases
                        .base_info(r, &raw[i].platform)
                        .map_err(|e| e.at(&raw[i].from_loc))?;
                    e.insert(env);
                    image_onbuild.insert(i, onbuild);
                }
            }
            if triggers.contains_key(&i) {
                continue;
            }
            let exprs = match &raw[i].base {
                Base::Image(_) => image_onbuild.get(&i).cloned().unwrap_or_default(),
                Base::Stage(p) => own_onbuild(&df.stages[*p]),
                Base::Scratch => Vec::new(),
            };
            let mut parsed = Vec::new();
            for t in exprs {
                let instr = hoist_dockerfile::parse_instruction(&t).map_err(|e| Error::Step {
                    location: raw[i].from_loc.clone(),
                    message: format!("ONBUILD trigger {t:?} of the base: {e}"),
                })?;
                let sources = step_sources(input, i, &instr, &raw[i].from_loc, false)?;
                if !sources.is_empty() {
                    new = true;
                }
                parsed.push((instr, sources));
            }
            triggers.insert(i, parsed);
        }
        if !new {
            break;
        }
    }

    let deps = |i: usize| stage_edges(&raw[i], triggers.get(&i)).collect::<BTreeSet<usize>>();
    let order = topological_order(&reachable, &deps).map_err(|cycle| {
        let s = &df.stages[cycle];
        Error::Step {
            location: raw[cycle].from_loc.clone(),
            message: format!(
                "circular dependency detected on stage: {}",
                stage_label(s, cycle)
            ),
        }
    })?;

    // Expand every instruction in build order, numbering steps as we go. A stage built
    // on another stage of the file continues that stage's scope (BuildKit's
    // dispatchState.init takes over the base's LLB state, whose env holds its ARG values,
    // and its build args): its ENV, and its ARGs with their values.
    let mut stages: Vec<Option<StagePlan>> = vec![None; df.stages.len()];
    let mut scopes: BTreeMap<usize, StageScope<'_>> = BTreeMap::new();
    let mut next_id = 0usize;
    for &i in &order {
        let stage = &df.stages[i];
        let r = &raw[i];
        let label = stage_label(stage, i);
        let mut scope = match &r.base {
            Base::Stage(p) => match scopes.get(p) {
                Some(parent) => parent.clone(),
                None => StageScope::new(input.global, &[]),
            },
            Base::Scratch => {
                StageScope::new(input.global, &[crate::stage::DEFAULT_PATH_ENV.to_string()])
            }
            Base::Image(_) => {
                let env = base_env.get(&i).cloned().unwrap_or_default();
                if env.is_empty() {
                    StageScope::new(input.global, &[crate::stage::DEFAULT_PATH_ENV.to_string()])
                } else {
                    StageScope::new(input.global, &env)
                }
            }
        };
        let total = stage.instructions.len() + 1;
        next_id += 1;
        let from_id = next_id;
        let from_name = format!("[{label} 1/{total}] FROM {}", r.base_name);
        let mut steps = Vec::new();
        let mut onbuild = Vec::new();
        let trig = triggers.remove(&i).unwrap_or_default();
        for (instr, sources) in trig {
            next_id += 1;
            let expanded = scope
                .apply(&instr)
                .map_err(|e| Error::Dockerfile(e.to_string()))
                .map_err(|e| e.at(&r.from_loc))?;
            steps.push(StepPlan {
                id: next_id,
                name: format!("[{label}] ONBUILD {}", crate::error::shown(&instr.original)),
                loc: r.from_loc.clone(),
                run_env: scope.run_env(),
                history_args: scope.history_args(),
                instr: expanded,
                sources,
            });
        }
        for (n, instr) in stage.instructions.iter().enumerate() {
            next_id += 1;
            let loc = location(file, instr.span.start_line, &instr.original);
            let expanded = scope
                .apply(instr)
                .map_err(|e| Error::Dockerfile(e.to_string()))?;
            if let InstructionKind::Onbuild { expression, .. } = &expanded.kind {
                onbuild.push(expression.clone());
            }
            steps.push(StepPlan {
                id: next_id,
                name: format!(
                    "[{label} {}/{total}] {}",
                    n + 2,
                    crate::error::shown(instr.original.lines().next().unwrap_or_default())
                ),
                loc,
                run_env: scope.run_env(),
                history_args: scope.history_args(),
                instr: expanded,
                sources: r.sources[n].clone(),
            });
        }
        stages[i] = Some(StagePlan {
            index: i,
            label,
            base: r.base.clone(),
            base_name: r.base_name.clone(),
            platform: r.platform.clone(),
            from_loc: r.from_loc.clone(),
            from_id,
            from_name,
            steps,
            onbuild,
            config_env: scope.config_env(),
            declared_args: scope.declared_args().clone(),
        });
        scopes.insert(i, scope);
    }
    let names = df
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| s.name.clone().unwrap_or_else(|| i.to_string()))
        .collect();
    Ok(Plan {
        stages,
        target,
        order,
        names,
    })
}

/// The ONBUILD expressions a Dockerfile stage records itself.
fn own_onbuild(stage: &Stage) -> Vec<String> {
    stage
        .instructions
        .iter()
        .filter_map(|i| match &i.kind {
            InstructionKind::Onbuild { expression, .. } => Some(expression.clone()),
            _ => None,
        })
        .collect()
}

fn target_index(df: &Dockerfile, target: Option<&str>) -> Result<usize> {
    match target {
        None => Ok(df.stages.len() - 1),
        Some(t) => {
            let lower = t.to_ascii_lowercase();
            df.stages
                .iter()
                .position(|s| s.name.as_deref() == Some(lower.as_str()))
                .ok_or_else(|| {
                    let names: Vec<&str> =
                        df.stages.iter().filter_map(|s| s.name.as_deref()).collect();
                    Error::Invalid(format!(
                        "target stage {t:?} could not be found (stages: {})",
                        if names.is_empty() {
                            "none named".to_string()
                        } else {
                            names.join(", ")
                        }
                    ))
                })
        }
    }
}

fn raw_stage(input: &PlanInput<'_>, i: usize, stage: &Stage) -> Result<RawStage> {
    let df = input.df;
    let from_loc = location(
        input.df_name,
        stage.from.span.start_line,
        &stage.from.original,
    );
    let (image, platform_str) = input
        .global
        .expand_from(stage)
        .map_err(|e| Error::Dockerfile(e.to_string()))?;
    let platform = match platform_str.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => Platform::parse(p).ok_or_else(|| Error::Step {
            location: from_loc.clone(),
            message: format!("invalid --platform {p:?}: expected os/arch[/variant]"),
        })?,
        None => input.platform.clone(),
    };
    // A base names an earlier stage exactly as that stage's (lower-cased) name is
    // stored: `FROM Build` after `AS build` is an image reference, as in BuildKit.
    let earlier = df.stages[..i]
        .iter()
        .rposition(|s| s.name.as_deref() == Some(image.as_str()));
    let base = if let Some(NamedContext::Image(r)) = input.named_contexts.get(&image) {
        Base::Image(r.clone())
    } else if let Some(NamedContext::Dir(d)) = input.named_contexts.get(&image) {
        return Err(Error::Step {
            location: from_loc,
            message: format!(
                "build context {image:?} is a directory ({}); FROM needs an image",
                d.display()
            ),
        });
    } else if let Some(p) = earlier {
        Base::Stage(p)
    } else if image.eq_ignore_ascii_case("scratch") {
        Base::Scratch
    } else {
        Base::Image(image.clone())
    };
    let mut sources = Vec::with_capacity(stage.instructions.len());
    for instr in &stage.instructions {
        let loc = location(input.df_name, instr.span.start_line, &instr.original);
        sources.push(step_sources(input, i, instr, &loc, true)?);
    }
    Ok(RawStage {
        base,
        base_name: image,
        platform,
        from_loc,
        sources,
    })
}

/// The `COPY --from` and `RUN --mount=from=` sources of one instruction of stage `i`.
/// `check_order`: a COPY may only read a stage defined before its own (BuildKit
/// dispatches stages in file order).
fn step_sources(
    input: &PlanInput<'_>,
    i: usize,
    instr: &Instruction,
    loc: &Location,
    check_order: bool,
) -> Result<BTreeMap<String, Source>> {
    let df = input.df;
    let mut out = BTreeMap::new();
    let here = stage_label(&df.stages[i], i);
    let err = |message: String| Error::Step {
        location: loc.clone(),
        message,
    };
    match &instr.kind {
        InstructionKind::Copy { from: Some(f), .. } => {
            if f.contains('$') {
                return Err(err(
                    "variable expansion is not supported for --from, define a new stage with \
                     FROM using ARG from global scope as a workaround"
                        .into(),
                ));
            }
            let src = resolve_source(input, f);
            if let Source::Stage(j) = src {
                if j >= df.stages.len() {
                    return Err(err(format!("invalid stage index {j}")));
                }
                if j == i {
                    return Err(err(format!(
                        "circular dependency detected on stage: {here}"
                    )));
                }
                if check_order && j > i {
                    return Err(err(format!(
                        "cannot copy from stage {f:?}, it needs to be defined before current \
                         stage {here:?}"
                    )));
                }
            }
            out.insert(f.clone(), src);
        }
        InstructionKind::Run { mounts, .. } => {
            for m in mounts {
                let from = match &m.options {
                    Some(MountOptions { from: Some(f), .. }) => f.clone(),
                    Some(_) => continue,
                    None => match raw_mount_from(&m.spec) {
                        Some(f) => f,
                        None => continue,
                    },
                };
                if let Some(idx) = from.find('$') {
                    if idx != from.len() - 1 {
                        return Err(err(
                            "'from' doesn't support variable expansion, define alias stage \
                             instead"
                                .into(),
                        ));
                    }
                }
                let src = resolve_source(input, &from);
                if let Source::Stage(j) = src {
                    if j >= df.stages.len() {
                        return Err(err(format!("invalid stage index {j}")));
                    }
                    if j == i {
                        return Err(err(format!(
                            "circular dependency detected on stage: {here}"
                        )));
                    }
                }
                out.insert(from, src);
            }
        }
        _ => {}
    }
    Ok(out)
}

/// The `from=` value of a mount spec written with variables (not parsed yet).
fn raw_mount_from(spec: &str) -> Option<String> {
    spec.split(',').find_map(|f| {
        let (k, v) = f.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("from")
            .then(|| v.trim().to_string())
    })
}

fn resolve_source(input: &PlanInput<'_>, name: &str) -> Source {
    match input.named_contexts.get(name) {
        Some(NamedContext::Dir(d)) => return Source::Dir(d.clone()),
        Some(NamedContext::Image(r)) => return Source::Image(r.clone()),
        None => {}
    }
    match stage_by_name_or_index(input.df, name) {
        Some(j) => Source::Stage(j),
        None => Source::Image(name.to_string()),
    }
}

/// The stages stage `r` reads: its base and the `--from`/`from=` sources of its own
/// instructions and of its ONBUILD triggers.
fn stage_edges<'a>(
    r: &'a RawStage,
    triggers: Option<&'a Vec<(Instruction, BTreeMap<String, Source>)>>,
) -> impl Iterator<Item = usize> + 'a {
    let base = match r.base {
        Base::Stage(p) => Some(p),
        _ => None,
    };
    let own = r.sources.iter().flat_map(|m| m.values());
    let trig = triggers.into_iter().flatten().flat_map(|(_, m)| m.values());
    base.into_iter()
        .chain(own.chain(trig).filter_map(|s| match s {
            Source::Stage(j) => Some(*j),
            _ => None,
        }))
}

fn reachable_from(target: usize, raw: &[RawStage], triggers: &Triggers) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if i >= raw.len() || !seen.insert(i) {
            continue;
        }
        todo.extend(stage_edges(&raw[i], triggers.get(&i)));
    }
    seen
}

#[cfg(test)]
mod tests;
