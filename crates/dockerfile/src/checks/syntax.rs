//! Checks that need only the parsed Dockerfile: casing, stage names, deprecated and legacy
//! forms, repeated instructions, secret-looking names, EXPOSE formats.

use super::rules::*;
use super::{Facts, Sink};
use crate::{Dockerfile, InstructionKind};

/// The keyword as written: the first word of the instruction's text.
pub(super) fn written_keyword(original: &str) -> &str {
    original.split_whitespace().next().unwrap_or_default()
}

fn self_consistent(s: &str) -> bool {
    s == s.to_lowercase() || s == s.to_uppercase()
}

pub(super) fn check(df: &Dockerfile, _facts: &Facts, sink: &mut Sink) {
    casing(df, sink);
    stage_names(df, sink);
    for stage in &df.stages {
        let mut cmd: Option<usize> = None;
        let mut entrypoint: Option<usize> = None;
        let mut healthcheck: Option<usize> = None;
        for instr in &stage.instructions {
            let line = instr.span.start_line;
            let name = written_keyword(&instr.original);
            let used_once = |seen: &mut Option<usize>, sink: &mut Sink| {
                // BuildKit reports the earlier instruction: it is the one that is ignored.
                if let Some(prev) = *seen {
                    sink.warn(
                        &MULTIPLE_INSTRUCTIONS_DISALLOWED,
                        prev,
                        format!(
                            "Multiple {name} instructions should not be used in the same stage \
                             because only the last one will be used"
                        ),
                    );
                }
                *seen = Some(line);
            };
            match &instr.kind {
                InstructionKind::Cmd { .. } => used_once(&mut cmd, sink),
                InstructionKind::Entrypoint { .. } => used_once(&mut entrypoint, sink),
                InstructionKind::Healthcheck { .. } => used_once(&mut healthcheck, sink),
                InstructionKind::Maintainer { .. } => sink.warn(
                    &MAINTAINER_DEPRECATED,
                    line,
                    "Maintainer instruction is deprecated in favor of using label".into(),
                ),
                InstructionKind::Env { vars } => {
                    for kv in vars {
                        if kv.legacy {
                            legacy(sink, line, name);
                        }
                        secret(sink, line, "ENV", &kv.key);
                    }
                }
                InstructionKind::Label { labels } => {
                    for kv in labels {
                        if kv.legacy {
                            legacy(sink, line, name);
                        }
                    }
                }
                InstructionKind::Arg { args } => {
                    for a in args {
                        secret(sink, line, "ARG", &a.name);
                    }
                }
                InstructionKind::Expose { ports } => {
                    for p in ports.iter().filter(|p| !p.contains('$')) {
                        expose(sink, line, p);
                    }
                }
                _ => {}
            }
        }
    }
}

fn legacy(sink: &mut Sink, line: usize, name: &str) {
    sink.warn(
        &LEGACY_KEY_VALUE_FORMAT,
        line,
        format!(
            "\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"
        ),
    );
}

/// BuildKit's secret-name test: a `_`-separated word (or the whole name) is one of the
/// secret tokens, case-insensitively, and no word is one of the allowed tokens. (The
/// same as its two regular expressions, without a regex engine for two word lists.)
pub(super) fn looks_secret(key: &str) -> bool {
    const DENY: &[&str] = &[
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const ALLOW: &[&str] = &["public", "file", "version"];
    let words: Vec<String> = key.split('_').map(str::to_ascii_lowercase).collect();
    let any = |list: &[&str]| words.iter().any(|w| list.contains(&w.as_str()));
    any(DENY) && !any(ALLOW)
}

fn secret(sink: &mut Sink, line: usize, instruction: &str, key: &str) {
    if looks_secret(key) {
        sink.warn(
            &SECRETS_USED_IN_ARG_OR_ENV,
            line,
            format!(
                "Do not use ARG or ENV instructions for sensitive data ({instruction} {key:?})"
            ),
        );
    }
}

fn expose(sink: &mut Sink, line: usize, raw: &str) {
    // [ip:]host:container[/proto]
    let parts: Vec<&str> = raw.split(':').collect();
    let container = parts.last().copied().unwrap_or_default();
    let proto = container.split_once('/').map(|(_, p)| p).unwrap_or("");
    if proto != proto.to_lowercase() {
        sink.warn(
            &EXPOSE_PROTO_CASING,
            line,
            format!("Defined protocol '{raw}' in EXPOSE instruction should be lowercase"),
        );
    }
    if parts.len() > 1 {
        sink.warn(
            &EXPOSE_INVALID_FORMAT,
            line,
            format!(
                "EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'"
            ),
        );
    }
}

fn casing(df: &Dockerfile, sink: &mut Sink) {
    // (keyword as written, line) of every FROM and instruction in stages.
    let mut all: Vec<(&str, usize)> = Vec::new();
    for stage in &df.stages {
        all.push((
            written_keyword(&stage.from.original),
            stage.from.span.start_line,
        ));
        for i in &stage.instructions {
            all.push((written_keyword(&i.original), i.span.start_line));
        }
    }
    let (mut lower, mut upper) = (0, 0);
    for (k, _) in &all {
        if self_consistent(k) {
            if *k == k.to_lowercase() {
                lower += 1;
            } else {
                upper += 1;
            }
        }
    }
    let majority_lower = lower > upper;
    for (k, line) in &all {
        let wrong = if majority_lower {
            (k.to_lowercase() != *k).then_some("lowercase")
        } else {
            (k.to_uppercase() != *k).then_some("uppercase")
        };
        if let Some(c) = wrong {
            sink.warn(
                &CONSISTENT_INSTRUCTION_CASING,
                *line,
                format!("Command '{k}' should match the case of the command majority ({c})"),
            );
        }
    }
    for stage in &df.stages {
        let from = &stage.from;
        let line = from.span.start_line;
        let Some(alias) = &from.alias else { continue };
        if *alias != alias.to_lowercase() {
            sink.warn(
                &STAGE_NAME_CASING,
                line,
                format!("Stage name '{alias}' should be lowercase"),
            );
        }
        // The word before the alias is `AS` as written.
        let words: Vec<&str> = from.original.split_whitespace().collect();
        let Some(pos) = words.iter().rposition(|w| w.eq_ignore_ascii_case("as")) else {
            continue;
        };
        let (kw, as_kw) = (words[0], words[pos]);
        let matches = if kw == kw.to_lowercase() {
            as_kw == as_kw.to_lowercase()
        } else if kw == kw.to_uppercase() {
            as_kw == as_kw.to_uppercase()
        } else {
            true // inconsistent FROM casing is ConsistentInstructionCasing's finding
        };
        if !matches {
            sink.warn(
                &FROM_AS_CASING,
                line,
                format!("'{as_kw}' and '{kw}' keywords' casing do not match"),
            );
        }
    }
}

fn stage_names(df: &Dockerfile, sink: &mut Sink) {
    let mut seen = std::collections::BTreeSet::new();
    for stage in &df.stages {
        let Some(name) = &stage.name else { continue };
        let line = stage.from.span.start_line;
        if name == "context" || name == "scratch" {
            sink.warn(
                &RESERVED_STAGE_NAME,
                line,
                format!("Stage name should not use the same name as reserved stage {name:?}"),
            );
        }
        if !seen.insert(name.clone()) {
            sink.warn(
                &DUPLICATE_STAGE_NAME,
                line,
                format!("Duplicate stage name {name:?}, stage names should be unique"),
            );
        }
    }
}
