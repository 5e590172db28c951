//! Planner tests: the graph is decided before anything runs.

use std::collections::BTreeMap;

use hoist_dockerfile::{GlobalScope, Platforms};
use hoist_image::Platform;

use super::*;

/// Base images' env and triggers as a table (the planner's only view of them).
struct Bases(BTreeMap<&'static str, (Vec<String>, Vec<String>)>);

impl BaseInfo for Bases {
    fn base_info(&self, reference: &str, _: &Platform) -> Result<(Vec<String>, Vec<String>)> {
        self.0
            .get(reference)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("no image {reference}")))
    }
}

fn bases() -> Bases {
    let mut m = BTreeMap::new();
    m.insert("img", (vec!["PATH=/bin".to_string(), "A=1".into()], vec![]));
    m.insert(
        "trig",
        (
            vec!["PATH=/bin".into()],
            vec!["COPY --from=helper /x /x".into()],
        ),
    );
    Bases(m)
}

fn plan_of(text: &str, target: Option<&str>) -> Result<Plan> {
    // Some graph rules are the parser's already (a variable in a mount's from=, no
    // stages): they are errors before planning, which is what matters.
    let df = hoist_dockerfile::parse(text, "Dockerfile")
        .map_err(|e| Error::Dockerfile(e.to_string()))?;
    let global = GlobalScope::new(&df, &BTreeMap::new(), &Platforms::host()).unwrap();
    let named = BTreeMap::new();
    let platform = Platform::parse("linux/amd64").unwrap();
    plan(
        &PlanInput {
            df: &df,
            df_name: "Dockerfile",
            global: &global,
            target,
            platform: &platform,
            named_contexts: &named,
        },
        &bases(),
    )
}

#[test]
fn unused_stages_are_not_planned() {
    let p = plan_of(
        "FROM img AS a\nRUN a\nFROM img AS unused\nRUN b\nFROM a\nCOPY --from=a /x /y\n",
        None,
    )
    .unwrap();
    assert_eq!(p.order, vec![0, 2]);
    assert!(p.stages[1].is_none());
    assert_eq!(p.stage(2).base, Base::Stage(0));
}

#[test]
fn stages_come_after_what_they_read() {
    let p = plan_of(
        "FROM img AS b\nRUN b\nFROM img AS a\nRUN a\nFROM scratch\nCOPY --from=a / /\nRUN --mount=from=b,target=/b true\n",
        None,
    )
    .unwrap();
    assert_eq!(p.order, vec![0, 1, 2]);
    assert_eq!(
        p.stage(2).stage_deps().into_iter().collect::<Vec<_>>(),
        vec![0, 1]
    );
}

#[test]
fn copy_from_a_later_stage_is_refused_before_anything_runs() {
    let e = plan_of(
        "FROM img AS target\nCOPY --from=build / /out\nFROM img AS build\nRUN x\nFROM target\n",
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("Dockerfile:2"), "{e}");
    assert!(
        e.contains("needs to be defined before current stage"),
        "{e}"
    );
}

#[test]
fn variables_in_from_are_refused() {
    let e = plan_of("FROM img\nARG X=a\nCOPY --from=$X / /\n", None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("variable expansion is not supported for --from"),
        "{e}"
    );
    let e = plan_of(
        "FROM img AS test\nFROM img\nENV t=test\nRUN --mount=from=$t,type=cache,target=/tmp ls\n",
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("'from' doesn't support variable expansion"),
        "{e}"
    );
}

#[test]
fn stage_names_in_from_match_as_stored() {
    // `AS BUG_stage` is stored as bug_stage; `FROM BUG_stage` is then an image
    // reference, as in BuildKit; COPY --from matches case-insensitively.
    let e = plan_of("FROM img AS BUG_stage\nFROM BUG_stage\n", None).unwrap_err();
    assert!(e.to_string().contains("BUG_stage"), "{e}");
    let p = plan_of(
        "FROM img AS Build\nRUN x\nFROM img\nCOPY --from=BUILD /a /b\n",
        None,
    )
    .unwrap();
    assert_eq!(p.order, vec![0, 1]);
}

#[test]
fn onbuild_of_a_stage_in_the_same_file_runs_in_its_children() {
    let p = plan_of(
        "FROM img AS base\nONBUILD RUN echo triggered\nFROM base\nRUN child\n",
        None,
    )
    .unwrap();
    let child = p.stage(1);
    assert_eq!(child.steps.len(), 2);
    assert!(child.steps[0].name.contains("ONBUILD RUN echo triggered"));
    // The base stage does not run its own trigger.
    assert!(p
        .stage(0)
        .steps
        .iter()
        .all(|s| !s.name.contains("ONBUILD RUN") || s.name.contains("2/2")));
}

#[test]
fn triggers_of_base_images_add_their_sources() {
    let p = plan_of("FROM img AS helper\nRUN h\nFROM trig\n", None).unwrap();
    assert_eq!(
        p.order,
        vec![0, 1],
        "the trigger's COPY --from=helper pulls in helper"
    );
    assert_eq!(
        p.stage(1).steps[0].sources.get("helper"),
        Some(&Source::Stage(0))
    );
}

#[test]
fn base_image_env_expands_instructions() {
    let p = plan_of("FROM img\nENV B=${A}2\nRUN echo $B\n", None).unwrap();
    let run = &p.stage(0).steps[1];
    assert!(run.run_env.iter().any(|e| e == "B=12"), "{:?}", run.run_env);
}

#[test]
fn cycles_and_bad_targets_are_errors() {
    let e = plan_of("FROM img AS a\nCOPY --from=a /x /y\n", None).unwrap_err();
    assert!(e.to_string().contains("circular dependency"), "{e}");
    let e = plan_of("FROM img AS a\n", Some("nope")).unwrap_err();
    assert!(
        e.to_string()
            .contains("target stage \"nope\" could not be found"),
        "{e}"
    );
}

#[test]
fn a_dockerfile_without_stages_is_an_error() {
    let e = plan_of("ARG foo=bar\n", None).unwrap_err();
    assert!(e.to_string().contains("no stages to build"), "{e}");
}

/// BuildKit: a stage `FROM` another stage of the file starts from that stage's state, so
/// the ARGs it declared keep their values (in RUN's environment and in expansions), while
/// a global ARG still needs its own `ARG` line in the stage to be seen.
#[test]
fn a_child_stage_inherits_its_parent_stages_args() {
    let p = plan_of(
        "ARG G=global\nFROM img AS base\nARG V=one\nENV E=env\nRUN a\n\
         FROM base AS child\nARG V=\"$V-two\"\nRUN b\n\
         FROM child AS grandchild\nARG V\nARG W=$V\nRUN c\nFROM grandchild\nARG G\nRUN d\n",
        None,
    )
    .unwrap();
    let env = |stage: usize, step: usize| p.stage(stage).steps[step].run_env.clone();
    let has = |e: &[String], kv: &str| e.iter().any(|x| x == kv);
    // The parent's value is used to expand the child's default.
    let child = env(1, 1);
    assert!(has(&child, "V=one-two"), "{child:?}");
    assert!(has(&child, "E=env"), "{child:?}");
    // `ARG V` without a default keeps the inherited value; later stages see it.
    let grand = env(2, 2);
    assert!(
        has(&grand, "V=one-two") && has(&grand, "W=one-two"),
        "{grand:?}"
    );
    assert!(!grand.iter().any(|x| x.starts_with("G=")), "{grand:?}");
    let last = env(3, 1);
    assert!(
        has(&last, "V=one-two") && has(&last, "G=global"),
        "{last:?}"
    );
    // ARGs are not image config.
    assert!(!p.stage(3).config_env.iter().any(|x| x.starts_with("V=")));
    // Stages built on an image start fresh.
    let p = plan_of("FROM img AS a\nARG V=1\nRUN a\nFROM img\nRUN b\n", None).unwrap();
    assert!(!p.stage(1).steps[0]
        .run_env
        .iter()
        .any(|x| x.starts_with("V=")));
}
