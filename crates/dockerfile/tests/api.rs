//! The public entry points used by the build engine and the CLI, and the crate's independence.

use std::collections::BTreeMap;

use hoist_dockerfile::*;

#[test]
fn no_dependency_on_other_hoist_crates() {
    let manifest = include_str!("../Cargo.toml");
    let deps = manifest.split("[dependencies]").nth(1).unwrap_or_default();
    let deps = deps.split("\n[").next().unwrap_or_default();
    assert!(
        !deps.contains("hoist"),
        "hoist-dockerfile must stay independent:\n{deps}"
    );
}

#[test]
fn parse_instruction_handles_onbuild_triggers() {
    let i = parse_instruction("RUN <<EOF\necho hi\nEOF").unwrap();
    match &i.kind {
        InstructionKind::Run { cmd, heredocs, .. } => {
            assert_eq!(cmd, &ShellOrExec::Shell("<<EOF".into()));
            assert_eq!(heredocs[0].content, "echo hi\n");
        }
        other => panic!("{other:?}"),
    }
    // The expression BuildKit stores for an ONBUILD parses back to the trigger.
    let df = parse("FROM a\nONBUILD COPY <<X /f\nbody\nX\n", "Dockerfile").unwrap();
    let InstructionKind::Onbuild {
        expression,
        trigger,
    } = &df.stages[0].instructions[0].kind
    else {
        panic!("not ONBUILD")
    };
    assert_eq!(expression, "COPY <<X /f\nbody\nX");
    let again = parse_instruction(expression).unwrap();
    assert_eq!(again.kind, trigger.as_ref().unwrap().kind);
    // like BuildKit, a trigger is only checked for its keyword until a child image runs it
    let df = parse("FROM a\nONBUILD COPY onlyone\n", "Dockerfile").unwrap();
    assert!(matches!(
        &df.stages[0].instructions[0].kind,
        InstructionKind::Onbuild { trigger: None, .. }
    ));
    assert!(parse_instruction("COPY onlyone").is_err());
    assert!(parse_instruction("RUN a\nRUN b").is_err());
    assert!(parse_instruction("FROM x").is_err());
}

#[test]
fn diagnostics_name_file_line_column_and_expectation() {
    let e = parse("FROM alpine\n  FOO bar\n", "sub/Dockerfile.dev").unwrap_err();
    let d = e.first();
    assert_eq!(
        (d.file.as_str(), d.line, d.column),
        ("sub/Dockerfile.dev", 2, 3)
    );
    assert_eq!(d.snippet, "FOO");
    assert!(d.expected.as_deref().unwrap().contains("RUN"));
    assert!(e
        .to_string()
        .starts_with("sub/Dockerfile.dev:2:3: unknown instruction \"FOO\""));
    assert_eq!(check("FROM a\nCOPY x\nRUN --bad y\n", "D").len(), 2);
    assert!(check("FROM a\n", "D").is_empty());
}

#[test]
fn json_output_round_trips() {
    let text = "FROM a AS b\nRUN --mount=type=cache,target=/c echo\nCOPY --from=b <<E /x\nhi\nE\n";
    let json = parse_to_json(text, "D").unwrap();
    let back: Dockerfile = serde_json::from_str(&json).unwrap();
    assert_eq!(back, parse(text, "D").unwrap());
}

#[test]
fn scoping_follows_buildkit() {
    let df = parse(
        "ARG V=1\nARG IMG=alpine:$V\nFROM $IMG\nRUN echo\nARG V\nARG NEW=${V}0\nENV E=$NEW\n",
        "Dockerfile",
    )
    .unwrap();
    let args = BTreeMap::from([
        ("V".to_string(), "2".to_string()),
        ("X".to_string(), "unused".to_string()),
    ]);
    let global = GlobalScope::new(&df, &args, &Platforms::host()).unwrap();
    assert_eq!(global.expand_from(&df.stages[0]).unwrap().0, "alpine:2");
    let mut scope = StageScope::new(&global, &["PATH=/bin".to_string()]);
    let mut out = Vec::new();
    for i in &df.stages[0].instructions {
        out.push(scope.apply(i).unwrap());
    }
    assert_eq!(out[3].to_string(), "ENV E=20");
    assert_eq!(scope.config_env(), ["PATH=/bin", "E=20"]);
    assert_eq!(scope.run_env(), ["PATH=/bin", "V=2", "NEW=20", "E=20"]);
    assert_eq!(scope.history_args(), ["V=2", "NEW=20"]);
    assert_eq!(global.unused_build_args([&scope]), ["X"]);
}

#[test]
fn exposed_ports_and_signals() {
    let p = exposed_ports(&["80".into(), "53/UDP".into(), "1000-1002/tcp".into()]).unwrap();
    assert_eq!(p, ["80/tcp", "53/udp", "1000/tcp", "1001/tcp", "1002/tcp"]);
    assert!(exposed_ports(&["70000".into()]).is_err());
    assert!(
        valid_signal("SIGKILL") && valid_signal("kill") && valid_signal("15") && !valid_signal("0")
    );
}

/// BuildKit's `CopyCommand.Expand`/`AddCommand.Expand` expand `--chmod` like `--chown`,
/// and sources go through the shell lexer (a backslash escapes the next character).
#[test]
fn copy_chmod_and_sources_are_expanded() {
    let df = parse(
        "FROM a\nARG M=0751\nCOPY --chmod=${M} --chown=$M a\\?b /d/\nADD --chmod=$M x /y\n",
        "Dockerfile",
    )
    .unwrap();
    let global = GlobalScope::new(&df, &BTreeMap::new(), &Platforms::host()).unwrap();
    let mut scope = StageScope::new(&global, &["PATH=/bin".to_string()]);
    let out: Vec<_> = df.stages[0]
        .instructions
        .iter()
        .map(|i| scope.apply(i).unwrap())
        .collect();
    match &out[1].kind {
        hoist_dockerfile::InstructionKind::Copy {
            chmod,
            chown,
            sources,
            ..
        } => {
            assert_eq!(chmod.as_deref(), Some("0751"));
            assert_eq!(chown.as_deref(), Some("0751"));
            assert_eq!(sources[0], hoist_dockerfile::CopySource::Path("a?b".into()));
        }
        other => panic!("{other:?}"),
    }
    match &out[2].kind {
        hoist_dockerfile::InstructionKind::Add { chmod, .. } => {
            assert_eq!(chmod.as_deref(), Some("0751"))
        }
        other => panic!("{other:?}"),
    }
}
