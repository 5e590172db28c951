//! The corpus: every `tests/corpus/NAME.Dockerfile` parses to the model in `NAME.json`
//! (together with its expansion: each stage's `FROM`, each instruction as `StageScope::apply`
//! returns it, and the final RUN and config environments, with build args from `NAME.args`);
//! every `tests/corpus/errors/NAME.Dockerfile` fails with the text in `NAME.err`. Rendering each
//! model and parsing it again gives the same model.
//!
//! `BLESS=1 cargo test -p hoist-dockerfile --test corpus` rewrites the expected files; review
//! the diff against BuildKit's semantics before committing (a blessed wrong answer is a bug).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use hoist_dockerfile::{parse, GlobalScope, Platforms, StageScope, DEFAULT_PATH_ENV};
use serde_json::{json, Value};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    v.sort();
    v
}

fn platforms() -> Platforms {
    Platforms {
        target_os: "linux".into(),
        target_arch: "arm64".into(),
        target_variant: "v8".into(),
        build_os: "linux".into(),
        build_arch: "amd64".into(),
        build_variant: String::new(),
    }
}

fn expansion(
    df: &hoist_dockerfile::Dockerfile,
    build_args: &BTreeMap<String, String>,
    name: &str,
) -> Value {
    let global = match GlobalScope::new_named(df, build_args, &platforms(), name) {
        Ok(g) => g,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let mut stages = Vec::new();
    let mut scopes = Vec::new();
    for st in &df.stages {
        let from = match global.expand_from(st) {
            Ok((img, plat)) => json!([img, plat]),
            Err(e) => json!({ "error": e.to_string() }),
        };
        let mut scope = StageScope::new(&global, &[DEFAULT_PATH_ENV.to_string()]);
        let mut out = Vec::new();
        for i in &st.instructions {
            match scope.apply(i) {
                Ok(x) => out.push(Value::String(x.to_string())),
                Err(e) => {
                    out.push(json!({ "error": e.to_string() }));
                    break;
                }
            }
        }
        stages.push(json!({
            "from": from,
            "instructions": out,
            "run_env": scope.run_env(),
            "config_env": scope.config_env(),
            "history_args": scope.history_args(),
        }));
        scopes.push(scope);
    }
    json!({ "stages": stages, "unused_build_args": global.unused_build_args(scopes.iter()) })
}

fn read_args(path: &Path) -> BTreeMap<String, String> {
    let p = path.with_extension("args");
    let Ok(text) = fs::read_to_string(p) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn corpus_parses_as_expected() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    let all = files(&corpus_dir());
    assert!(all.len() >= 60, "corpus has only {} files", all.len());
    for path in all {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = fs::read_to_string(&path).unwrap();
        let df = match parse(&text, &name) {
            Ok(df) => df,
            Err(e) => {
                failures.push(format!("{name}: unexpected error: {e}"));
                continue;
            }
        };
        let got = json!({
            "model": serde_json::to_value(&df).unwrap(),
            "expanded": expansion(&df, &read_args(&path), &name),
        });
        let expected_path = path.with_extension("json");
        if bless {
            fs::write(
                &expected_path,
                serde_json::to_string_pretty(&got).unwrap() + "\n",
            )
            .unwrap();
        } else {
            let expected: Value = match fs::read_to_string(&expected_path) {
                Ok(t) => serde_json::from_str(&t).unwrap(),
                Err(_) => {
                    failures.push(format!("{name}: missing {}", expected_path.display()));
                    continue;
                }
            };
            if expected != got {
                failures.push(format!(
                    "{name}: model differs\nexpected: {}\ngot: {}",
                    serde_json::to_string(&expected).unwrap(),
                    serde_json::to_string(&got).unwrap()
                ));
            }
        }
        // JSON round trip of the model
        let back: hoist_dockerfile::Dockerfile =
            serde_json::from_value(serde_json::to_value(&df).unwrap()).unwrap();
        assert_eq!(back, df, "{name}: JSON round trip");
        // render and parse again
        let rendered = df.render();
        match parse(&rendered, "rendered") {
            Ok(again) => {
                if again.without_source_info() != df.without_source_info() {
                    failures.push(format!(
                        "{name}: render round trip differs\n--- rendered:\n{rendered}"
                    ));
                }
            }
            Err(e) => failures.push(format!(
                "{name}: rendered text does not parse: {e}\n--- rendered:\n{rendered}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn negative_cases_fail_as_expected() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    let all = files(&corpus_dir().join("errors"));
    assert!(all.len() >= 30, "only {} negative cases", all.len());
    for path in all {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = fs::read_to_string(&path).unwrap();
        let got = match parse(&text, &name) {
            Ok(df) => {
                // errors found while expanding count too (BuildKit reports them at build time)
                let exp = expansion(&df, &read_args(&path), &name);
                let s = serde_json::to_string(&exp).unwrap();
                match s.find("\"error\":\"") {
                    Some(i) => {
                        let rest = &s[i + 9..];
                        let end = rest.find("\"}").unwrap_or(rest.len());
                        serde_json::from_str::<String>(&format!("\"{}\"", &rest[..end])).unwrap()
                    }
                    None => {
                        failures.push(format!("{name}: parsed and expanded without error"));
                        continue;
                    }
                }
            }
            Err(e) => e.to_string(),
        };
        let expected_path = path.with_extension("err");
        if bless {
            fs::write(&expected_path, format!("{got}\n")).unwrap();
        } else {
            let expected = fs::read_to_string(&expected_path).unwrap_or_default();
            if expected.trim_end() != got {
                failures.push(format!(
                    "{name}:\nexpected: {}\ngot:      {got}",
                    expected.trim_end()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
