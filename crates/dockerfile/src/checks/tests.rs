use super::*;
use crate::parse;

fn run(text: &str, facts: &Facts) -> Report {
    check(&parse(text, "Dockerfile").unwrap(), "Dockerfile", facts).unwrap()
}

fn found(text: &str) -> Vec<(String, usize, String)> {
    run(text, &Facts::default())
        .warnings
        .into_iter()
        .map(|w| (w.rule.name.to_string(), w.line, w.message))
        .collect()
}

fn names(text: &str) -> Vec<String> {
    found(text).into_iter().map(|f| f.0).collect()
}

#[test]
fn casing_rules_with_buildkit_messages() {
    let f = found("FROM scratch as Build\nfrom scratch AS two\nCOPY a b\n");
    assert!(f.contains(&(
        "StageNameCasing".into(),
        1,
        "Stage name 'Build' should be lowercase".into()
    )));
    assert!(f.contains(&(
        "FromAsCasing".into(),
        1,
        "'as' and 'FROM' keywords' casing do not match".into()
    )));
    assert!(f.contains(&(
        "FromAsCasing".into(),
        2,
        "'AS' and 'from' keywords' casing do not match".into()
    )));
    assert!(f.contains(&(
        "ConsistentInstructionCasing".into(),
        2,
        "Command 'from' should match the case of the command majority (uppercase)".into()
    )));
}

#[test]
fn stage_names_and_deprecations() {
    let f = found(
        "FROM scratch AS a\nMAINTAINER me\nFROM scratch AS a\nFROM scratch AS context\nENV X 1\nLABEL k v\n",
    );
    let want = [
        (
            "MaintainerDeprecated",
            2,
            "Maintainer instruction is deprecated in favor of using label",
        ),
        (
            "DuplicateStageName",
            3,
            "Duplicate stage name \"a\", stage names should be unique",
        ),
        (
            "ReservedStageName",
            4,
            "Stage name should not use the same name as reserved stage \"context\"",
        ),
        (
            "LegacyKeyValueFormat",
            5,
            "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format",
        ),
        (
            "LegacyKeyValueFormat",
            6,
            "\"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format",
        ),
    ];
    for (r, l, m) in want {
        assert!(f.contains(&(r.into(), l, m.into())), "{r}: {f:?}");
    }
}

#[test]
fn json_args_and_multiple_instructions() {
    let f = found("FROM scratch\nCMD a\nCMD [\"b\"]\nENTRYPOINT x\n");
    assert!(f.contains(&(
        "JSONArgsRecommended".into(),
        2,
        "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals"
            .into()
    )));
    assert!(f.contains(&(
        "MultipleInstructionsDisallowed".into(),
        2,
        "Multiple CMD instructions should not be used in the same stage because only the last one will be used".into()
    )));
    assert!(f.iter().any(|x| x.0 == "JSONArgsRecommended" && x.1 == 4));
    // A SHELL (here or in the parent stage, or the base image's) silences it.
    assert!(
        !names("FROM scratch AS a\nSHELL [\"/bin/sh\", \"-c\"]\nFROM a\nCMD x\n")
            .contains(&"JSONArgsRecommended".to_string())
    );
    let mut facts = Facts::default();
    facts.base_images.insert(
        0,
        BaseImage {
            env: vec![],
            shell: true,
        },
    );
    assert!(run("FROM alpine\nCMD x\n", &facts).warnings.is_empty());
}

#[test]
fn secrets_in_arg_or_env() {
    let f =
        found("FROM scratch\nARG API_KEY\nENV GITHUB_TOKEN=x PUBLIC_KEY=y KEYBOARD=z\nARG auth\n");
    assert_eq!(
        f.iter()
            .filter(|x| x.0 == "SecretsUsedInArgOrEnv")
            .map(|x| x.2.as_str())
            .collect::<Vec<_>>(),
        [
            "Do not use ARG or ENV instructions for sensitive data (ARG \"API_KEY\")",
            "Do not use ARG or ENV instructions for sensitive data (ENV \"GITHUB_TOKEN\")",
            "Do not use ARG or ENV instructions for sensitive data (ARG \"auth\")",
        ]
    );
}

#[test]
fn undefined_vars_need_the_base_env() {
    let text = "FROM alpine\nARG DECLARED\nENV A=$HOME B=$DECLARED C=$PAHT\nCOPY $NOTHING_SET /x\n";
    // Unknown base image environment: not reported.
    assert!(!names(text).contains(&"UndefinedVar".to_string()));
    let mut facts = Facts::default();
    facts.base_images.insert(
        0,
        BaseImage {
            env: vec!["PATH=/bin".into(), "HOME=/root".into()],
            shell: false,
        },
    );
    let msgs: Vec<String> = run(text, &facts)
        .warnings
        .into_iter()
        .filter(|w| w.rule.name == "UndefinedVar")
        .map(|w| format!("{}: {}", w.line, w.message))
        .collect();
    assert_eq!(
        msgs,
        [
            "3: Usage of undefined variable '$PAHT' (did you mean $PATH?)",
            "4: Usage of undefined variable '$NOTHING_SET'"
        ]
    );
    // scratch and earlier stages are known without facts.
    let f = found("FROM scratch AS a\nENV X=1\nFROM a\nENV Y=$X$Z\n");
    assert!(
        f.contains(&(
            "UndefinedVar".into(),
            4,
            "Usage of undefined variable '$Z' (did you mean $X?)".into()
        )),
        "{f:?}"
    );
    assert_eq!(f.iter().filter(|x| x.0 == "UndefinedVar").count(), 1);
}

#[test]
fn from_args() {
    let f =
        found("ARG VERSION=1\nARG IMG\nFROM alpine:$VERSIN\nFROM $IMG\nFROM busybox:${VERSION}\n");
    assert!(f.contains(&(
        "UndefinedArgInFrom".into(),
        3,
        "FROM argument 'VERSIN' is not declared (did you mean VERSION?)".into()
    )));
    assert!(f.contains(&(
        "InvalidDefaultArgInFrom".into(),
        4,
        "Default value for ARG $IMG results in empty or invalid base image name".into()
    )));
    assert!(f.contains(&(
        "InvalidDefaultArgInFrom".into(),
        3,
        "Default value for ARG alpine:$VERSIN results in empty or invalid base image name".into()
    )));
    assert!(!f.iter().any(|x| x.1 == 5), "{f:?}");
    // hoist's local transports are not registry references, with or without an ARG.
    let f = found("ARG DIR=/tmp/base\nFROM oci:/srv/base:latest\nFROM oci:${DIR}:latest\nFROM docker-archive:b.tar\n");
    assert!(!f.iter().any(|x| x.0 == "InvalidDefaultArgInFrom"), "{f:?}");
    let f = found("FROM --platform=linux/amd64 scratch AS x\nFROM --platform=$TARGETPLATFORM scratch\nFROM --platform=linux/arm64 scratch AS arm64-build\n");
    assert!(f.contains(&(
        "FromPlatformFlagConstDisallowed".into(),
        1,
        "FROM --platform flag should not use constant value \"linux/amd64\"".into()
    )));
    assert!(f.contains(&(
        "RedundantTargetPlatform".into(),
        2,
        "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior".into()
    )));
    assert!(!f.iter().any(|x| x.1 == 3));
}

#[test]
fn workdir_expose_and_ignored_files() {
    let f = found("FROM scratch\nWORKDIR app\nWORKDIR sub\nEXPOSE 80/TCP 8080:80\n");
    assert!(f.contains(&(
        "WorkdirRelativePath".into(),
        2,
        "Relative workdir \"app\" can have unexpected results if the base image changes".into()
    )));
    assert!(!f.iter().any(|x| x.1 == 3));
    assert!(f.iter().any(|x| x.0 == "ExposeProtoCasing"));
    assert!(f.iter().any(|x| x.0 == "ExposeInvalidFormat"));
    let m = crate::ignore::Matcher::from_ignore_file("secret.txt\nbuild/\n").unwrap();
    let facts = Facts {
        ignore: Some(&m),
        ..Facts::default()
    };
    let r = run(
        "FROM scratch\nCOPY secret.txt ./build/out /x/\nCOPY --from=a secret.txt /y\nADD https://e.com/secret.txt /z\nCOPY . /w\n",
        &facts,
    );
    let msgs: Vec<&str> = r.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "Attempting to Copy file \"secret.txt\" that is excluded by .dockerignore",
            "Attempting to Copy file \"build/out\" that is excluded by .dockerignore",
        ]
    );
}

#[test]
fn check_directive_skips_and_errors() {
    let text = "# check=skip=StageNameCasing;error=true\nFROM scratch as Build\n";
    let r = run(text, &Facts::default());
    assert_eq!(r.warnings.len(), 1, "{r:?}");
    assert_eq!(r.warnings[0].rule.name, "FromAsCasing");
    assert_eq!(
        r.failure().unwrap(),
        "lint violation found for rules: FromAsCasing"
    );
    assert!(run(
        "# check=skip=all\nFROM scratch as Build\n",
        &Facts::default()
    )
    .warnings
    .is_empty());
    // The build arg wins over the directive.
    let mut facts = Facts::default();
    facts
        .build_args
        .insert("BUILDKIT_DOCKERFILE_CHECK".into(), "skip=all".into());
    assert!(run(text, &facts).failure().is_none());
    let bad = parse("# check=bogus=1\nFROM scratch\n", "Dockerfile").unwrap();
    assert_eq!(
        check(&bad, "Dockerfile", &Facts::default()).unwrap_err(),
        "failed to parse check options: invalid check option \"bogus\""
    );
    assert!(run("FROM scratch\n", &Facts::default()).failure().is_none());
}

#[test]
fn references() {
    for ok in [
        "alpine",
        "alpine:3.20",
        "docker.io/library/alpine:latest",
        "localhost:5000/a/b",
        "a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "my-stage",
        "a__b.c",
    ] {
        assert!(expand::valid_reference(ok), "{ok}");
    }
    for bad in ["", "alpine:", "Alpine", ":tag", "a//b", "a@sha256:", "-a"] {
        assert!(!expand::valid_reference(bad), "{bad}");
    }
}

#[test]
fn every_rule_url_is_buildkits() {
    for r in rules::ALL {
        assert!(
            r.url
                .starts_with("https://docs.docker.com/go/dockerfile/rule/"),
            "{}",
            r.name
        );
        assert!(rules::by_name(r.name).is_some());
    }
}
