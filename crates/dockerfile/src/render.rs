//! Rendering the model back to Dockerfile text.
//!
//! The output parses back to an equal model (up to source locations and original text; see
//! [`Dockerfile::without_source_info`]). Strings are written as stored, so a model taken from
//! [`parse`](crate::parse) renders with its quoting and variables intact.

use std::fmt::{self, Write as _};

use crate::model::*;

fn needs_quotes(v: &str) -> bool {
    v.is_empty()
        || v.chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
}

fn flag(out: &mut String, name: &str, value: &str) {
    out.push_str(" --");
    out.push_str(name);
    out.push('=');
    if needs_quotes(value) && !value.is_empty() {
        out.push('"');
        for c in value.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn opt_flag(out: &mut String, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        flag(out, name, v);
    }
}

fn bool_flag(out: &mut String, name: &str, value: bool) {
    if value {
        out.push_str(" --");
        out.push_str(name);
    }
}

fn json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// Appends the argument text, protecting text that would be taken for flags.
fn args(out: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    out.push(' ');
    if text.starts_with("--") {
        out.push_str("-- ");
    }
    out.push_str(text);
}

fn cmd_text(cmd: &ShellOrExec) -> String {
    match cmd {
        ShellOrExec::Shell(s) => s.clone(),
        ShellOrExec::Exec(v) => json(v),
    }
}

fn kvs(out: &mut String, pairs: &[KeyValue]) {
    let text = if pairs.len() == 1 && pairs[0].legacy {
        format!("{} {}", pairs[0].key, pairs[0].value)
    } else {
        pairs
            .iter()
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect::<Vec<_>>()
            .join(" ")
    };
    args(out, &text);
}

fn sources_text(sources: &[CopySource], dest: &str, json_form: bool) -> String {
    let mut toks: Vec<String> = sources
        .iter()
        .map(|s| match s {
            CopySource::Path(p) => p.clone(),
            CopySource::Heredoc(h) => h.token.clone(),
        })
        .collect();
    toks.push(dest.to_string());
    if json_form {
        json(&toks)
    } else {
        join_words(&toks)
    }
}

/// Joins whitespace-separated words so that they read back as the same words: with spaces,
/// unless that happens to form a JSON array (possible when the original separators were
/// tabs inside what looked like JSON strings); then with form feeds, which BuildKit splits on
/// but JSON never accepts.
fn join_words(words: &[String]) -> String {
    let spaced = words.join(" ");
    if words.len() > 1
        && !matches!(
            crate::parse::parse_json(&spaced),
            crate::parse::JsonResult::NotJson
        )
    {
        words.join("\u{c}")
    } else {
        spaced
    }
}

/// The heredoc bodies to write after `line`: one per delimiter that BuildKit's parser will
/// find on that line (none in JSON form, none when the line's quoting hides them).
fn bodies(kind: &InstructionKind, line: &str) -> Vec<(String, String)> {
    let json_form = matches!(
        kind,
        InstructionKind::Add { json: true, .. } | InstructionKind::Copy { json: true, .. }
    ) || matches!(
        kind,
        InstructionKind::Run {
            cmd: ShellOrExec::Exec(_),
            ..
        }
    );
    if json_form || !line.contains("<<") {
        return Vec::new();
    }
    let found = crate::parse::heredocs_from_line(line).unwrap_or_default();
    match kind {
        InstructionKind::Run { heredocs, .. } => found
            .iter()
            .enumerate()
            .map(|(i, d)| {
                (
                    heredocs
                        .get(i)
                        .map(|h| h.content.clone())
                        .unwrap_or_default(),
                    d.name.clone(),
                )
            })
            .collect(),
        InstructionKind::Add { sources, .. } | InstructionKind::Copy { sources, .. } => found
            .iter()
            .map(|d| {
                let content = sources
                    .iter()
                    .rev()
                    .find_map(|s| match s {
                        CopySource::Heredoc(h) if h.name == d.name => Some(h.content.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                (content, d.name.clone())
            })
            .collect(),
        _ => Vec::new(),
    }
}

impl InstructionKind {
    /// The instruction line, without heredoc bodies: `COPY --link <<EOF /x`.
    pub fn render_line(&self) -> String {
        let mut o = String::from(self.keyword());
        match self {
            InstructionKind::Run {
                cmd,
                mounts,
                network,
                security,
                ..
            } => {
                for m in mounts {
                    flag(&mut o, "mount", &m.spec);
                }
                if let Some(n) = network {
                    let v = match n {
                        Network::Default => "default",
                        Network::None => "none",
                        Network::Host => "host",
                    };
                    flag(&mut o, "network", v);
                }
                if let Some(s) = security {
                    let v = match s {
                        Security::Sandbox => "sandbox",
                        Security::Insecure => "insecure",
                    };
                    flag(&mut o, "security", v);
                }
                args(&mut o, &cmd_text(cmd));
            }
            InstructionKind::Cmd { cmd } | InstructionKind::Entrypoint { cmd } => {
                args(&mut o, &cmd_text(cmd))
            }
            InstructionKind::Shell { shell } => args(&mut o, &json(shell)),
            InstructionKind::Label { labels } => kvs(&mut o, labels),
            InstructionKind::Env { vars } => kvs(&mut o, vars),
            InstructionKind::Maintainer { maintainer } => args(&mut o, maintainer),
            InstructionKind::Expose { ports } => {
                // BuildKit sorts the ports, so any order reads back the same; put words that end
                // in an escape character first, where they cannot be read as a continuation.
                let (mut esc, plain): (Vec<&String>, Vec<&String>) =
                    ports.iter().partition(|p| p.ends_with(['\\', '`']));
                esc.extend(plain);
                args(
                    &mut o,
                    &esc.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
                );
            }
            InstructionKind::Arg { args: defs } => {
                let text = defs
                    .iter()
                    .map(|a| match &a.default {
                        Some(d) => format!("{}={d}", a.name),
                        None => a.name.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                args(&mut o, &text);
            }
            InstructionKind::Add {
                sources,
                dest,
                json,
                chown,
                chmod,
                link,
                keep_git_dir,
                checksum,
                unpack,
                exclude,
            } => {
                opt_flag(&mut o, "chown", chown);
                opt_flag(&mut o, "chmod", chmod);
                bool_flag(&mut o, "link", *link);
                bool_flag(&mut o, "keep-git-dir", *keep_git_dir);
                opt_flag(&mut o, "checksum", checksum);
                if let Some(u) = unpack {
                    flag(&mut o, "unpack", if *u { "true" } else { "false" });
                }
                for e in exclude {
                    flag(&mut o, "exclude", e);
                }
                args(&mut o, &sources_text(sources, dest, *json));
            }
            InstructionKind::Copy {
                sources,
                dest,
                json,
                from,
                chown,
                chmod,
                link,
                parents,
                exclude,
            } => {
                opt_flag(&mut o, "from", from);
                opt_flag(&mut o, "chown", chown);
                opt_flag(&mut o, "chmod", chmod);
                bool_flag(&mut o, "link", *link);
                bool_flag(&mut o, "parents", *parents);
                for e in exclude {
                    flag(&mut o, "exclude", e);
                }
                args(&mut o, &sources_text(sources, dest, *json));
            }
            InstructionKind::Volume { volumes, json: j } => {
                let text = if *j {
                    json(volumes)
                } else {
                    join_words(volumes)
                };
                args(&mut o, &text);
            }
            InstructionKind::User { user } => args(&mut o, user),
            InstructionKind::Workdir { path } => args(&mut o, path),
            InstructionKind::Onbuild { expression, .. } => {
                // The expression is what BuildKit stores in the image config; it is the trigger
                // as written, so writing it back keeps the model identical.
                o.push(' ');
                o.push_str(expression.split('\n').next().unwrap_or_default());
            }
            InstructionKind::Stopsignal { signal } => args(&mut o, signal),
            InstructionKind::Healthcheck { check } => match check {
                Healthcheck::None => o.push_str(" NONE"),
                Healthcheck::Cmd {
                    cmd,
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                } => {
                    for (n, v) in [
                        ("interval", interval),
                        ("timeout", timeout),
                        ("start-period", start_period),
                        ("start-interval", start_interval),
                    ] {
                        if let Some(v) = v {
                            flag(&mut o, n, &crate::mount::format_duration(*v));
                        }
                    }
                    if let Some(r) = retries {
                        flag(&mut o, "retries", &r.to_string());
                    }
                    o.push_str(" CMD");
                    let t = cmd_text(cmd);
                    if !t.is_empty() {
                        o.push(' ');
                        o.push_str(&t);
                    }
                }
            },
        }
        o
    }
}

impl fmt::Display for Instruction {
    /// The instruction line followed by its heredoc bodies and terminators.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let InstructionKind::Onbuild { expression, .. } = &self.kind {
            return write!(f, "ONBUILD {expression}");
        }
        let line = self.kind.render_line();
        f.write_str(&line)?;
        for (content, name) in bodies(&self.kind, &line) {
            f.write_char('\n')?;
            f.write_str(&content)?;
            f.write_str(&name)?;
        }
        Ok(())
    }
}

impl From {
    /// The `FROM` line.
    pub fn render_line(&self) -> String {
        let mut o = String::from("FROM");
        opt_flag(&mut o, "platform", &self.platform);
        args(&mut o, &self.image);
        if let Some(a) = &self.alias {
            o.push_str(" AS ");
            o.push_str(a);
        }
        o
    }
}

impl fmt::Display for Dockerfile {
    /// The whole file: directives, global ARGs, then each stage.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.directives.syntax {
            writeln!(f, "# syntax={s}")?;
        }
        if let Some(e) = &self.directives.escape {
            writeln!(f, "# escape={e}")?;
        }
        if let Some(c) = &self.directives.check {
            writeln!(f, "# check={c}")?;
        }
        let esc = self.escape();
        for a in &self.global_args {
            writeln!(f, "{}", protect_end(a.to_string(), esc))?;
        }
        for s in &self.stages {
            writeln!(f, "{}", protect_end(s.from.render_line(), esc))?;
            for i in &s.instructions {
                writeln!(f, "{}", protect_end(i.to_string(), esc))?;
            }
        }
        Ok(())
    }
}

/// A value can end with the escape character only in the last instruction of a file (where
/// BuildKit's continuation rule removed one escape at end of file); write it back doubled so
/// that the continuation rule takes one away again.
fn protect_end(text: String, escape: char) -> String {
    let first_len = text.find('\n').unwrap_or(text.len());
    let first = &text[..first_len];
    if first.trim_end_matches([' ', '\t']).ends_with(escape) {
        let mut out = String::with_capacity(text.len() + 1);
        out.push_str(first);
        out.push(escape);
        out.push_str(&text[first_len..]);
        out
    } else {
        text
    }
}

impl Dockerfile {
    /// Renders the model as Dockerfile text (same as `to_string()`).
    pub fn render(&self) -> String {
        self.to_string()
    }
}
