//! Instructions that change only the image config: ENV, ARG, LABEL, MAINTAINER,
//! EXPOSE, USER, VOLUME, STOPSIGNAL, SHELL, CMD, ENTRYPOINT, HEALTHCHECK, ONBUILD.

use std::collections::BTreeMap;

use hoist_dockerfile::{Healthcheck, InstructionKind, ShellOrExec};
use hoist_image::HealthConfig;

use crate::error::{Error, Result};
use crate::execute::StepCx;
use crate::history;
use crate::stage::StageState;

/// Apply a config-only instruction to `state` and record its history entry.
pub(crate) fn apply(cx: &StepCx<'_, '_>, state: &mut StageState) -> Result<()> {
    let eng = cx.eng;
    match &cx.step.instr.kind {
        InstructionKind::Env { vars } => {
            let mut msg = String::from("ENV");
            for kv in vars {
                let env = state.cfg().env.get_or_insert_with(Vec::new);
                add_env(env, &kv.key, &kv.value);
                msg.push_str(&format!(" {}={}", kv.key, kv.value));
            }
            eng.history(state, msg, true);
        }
        InstructionKind::Arg { args } => {
            let env = &cx.step.run_env;
            let mut parts = Vec::new();
            for a in args {
                parts.push(match lookup(env, &a.name) {
                    Some(v) => format!("{}={}", a.name, v),
                    None => a.name.clone(),
                });
                state.declared_args.push(a.name.clone());
            }
            eng.history(state, format!("ARG {}", parts.join(" ")), true);
        }
        InstructionKind::Label { labels } => {
            let mut msg = String::from("LABEL");
            for kv in labels {
                state
                    .cfg()
                    .labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(kv.key.clone(), kv.value.clone());
                msg.push_str(&format!(" {}={}", kv.key, kv.value));
            }
            eng.history(state, msg, true);
        }
        InstructionKind::Maintainer { maintainer } => {
            state.config.author = Some(maintainer.clone());
            eng.history(state, format!("MAINTAINER {maintainer}"), true);
        }
        InstructionKind::Expose { ports } => {
            let specs = hoist_dockerfile::exposed_ports(ports).map_err(Error::Invalid)?;
            let map = state.cfg().exposed_ports.get_or_insert_with(BTreeMap::new);
            for s in &specs {
                map.insert(s.clone(), serde_json::json!({}));
            }
            eng.history(state, format!("EXPOSE {}", history::go_list(&specs)), true);
        }
        InstructionKind::User { user } => {
            state.cfg().user = Some(user.clone());
            eng.history(state, format!("USER {user}"), true);
        }
        InstructionKind::Volume { volumes, .. } => {
            let map = state.cfg().volumes.get_or_insert_with(BTreeMap::new);
            for v in volumes {
                if v.is_empty() {
                    return Err(Error::Invalid(
                        "VOLUME specified can not be an empty string".into(),
                    ));
                }
                map.insert(v.clone(), serde_json::json!({}));
            }
            eng.history(state, format!("VOLUME {}", history::go_list(volumes)), true);
        }
        InstructionKind::Stopsignal { signal } => {
            if !hoist_dockerfile::valid_signal(signal) {
                return Err(Error::Invalid(format!("invalid signal: {signal}")));
            }
            state.cfg().stop_signal = Some(signal.clone());
            eng.history(state, format!("STOPSIGNAL {signal}"), true);
        }
        InstructionKind::Shell { shell } => {
            state.cfg().shell = Some(shell.clone());
            eng.history(state, format!("SHELL {}", history::go_list(shell)), true);
        }
        InstructionKind::Cmd { cmd } => {
            let args = with_shell(state, cmd);
            let c = state.cfg();
            c.cmd = Some(args.clone());
            c.args_escaped = Some(true);
            state.cmd_set = true;
            eng.history(
                state,
                format!("CMD {}", history::go_quote_list(&args)),
                true,
            );
        }
        InstructionKind::Entrypoint { cmd } => {
            let args = with_shell(state, cmd);
            let cmd_set = state.cmd_set;
            let c = state.cfg();
            c.entrypoint = Some(args.clone());
            if !cmd_set {
                c.cmd = None;
            }
            eng.history(
                state,
                format!("ENTRYPOINT {}", history::go_quote_list(&args)),
                true,
            );
        }
        InstructionKind::Healthcheck { check } => {
            let hc = health_config(check);
            let msg = format!(
                "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
                history::go_list(hc.test.as_deref().unwrap_or_default()),
                history::go_duration(hc.interval.unwrap_or(0)),
                history::go_duration(hc.timeout.unwrap_or(0)),
                history::go_duration(hc.start_period.unwrap_or(0)),
                history::go_duration(hc.start_interval.unwrap_or(0)),
                hc.retries.unwrap_or(0)
            );
            state.cfg().healthcheck = Some(hc);
            eng.history(state, msg, true);
        }
        InstructionKind::Onbuild { expression, .. } => {
            state
                .cfg()
                .on_build
                .get_or_insert_with(Vec::new)
                .push(expression.clone());
        }
        other => {
            return Err(Error::Invalid(format!(
                "{other:?} is not a config instruction (a bug in the dispatcher)"
            )))
        }
    }
    Ok(())
}

fn health_config(check: &Healthcheck) -> HealthConfig {
    match check {
        Healthcheck::None => HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        },
        Healthcheck::Cmd {
            cmd,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        } => HealthConfig {
            test: Some(match cmd {
                ShellOrExec::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                ShellOrExec::Exec(a) => {
                    let mut v = vec!["CMD".to_string()];
                    v.extend(a.iter().cloned());
                    v
                }
            }),
            interval: interval.filter(|v| *v != 0),
            timeout: timeout.filter(|v| *v != 0),
            start_period: start_period.filter(|v| *v != 0),
            start_interval: start_interval.filter(|v| *v != 0),
            retries: retries.filter(|v| *v != 0),
        },
    }
}

/// A CMD/ENTRYPOINT in exec form, or the shell form wrapped in the stage's SHELL.
fn with_shell(state: &StageState, cmd: &ShellOrExec) -> Vec<String> {
    match cmd {
        ShellOrExec::Exec(a) => a.clone(),
        ShellOrExec::Shell(s) => {
            let mut v = state.shell();
            v.push(s.clone());
            v
        }
    }
}

fn lookup(env: &[String], key: &str) -> Option<String> {
    env.iter().rev().find_map(|e| {
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        (k == key).then(|| v.to_string())
    })
}

/// Set `k=v` in an env list, replacing an existing `k` in place (BuildKit's `addEnv`).
pub fn add_env(env: &mut Vec<String>, k: &str, v: &str) {
    for e in env.iter_mut() {
        let key = e.split_once('=').map(|(a, _)| a).unwrap_or(e);
        if key == k {
            *e = format!("{k}={v}");
            return;
        }
    }
    env.push(format!("{k}={v}"));
}
