//! The parser: lines to instructions (BuildKit `parser.Parse`), then instructions to the
//! typed model (BuildKit `instructions.Parse`).

use crate::error::{Diagnostic, Error};
use crate::lex::{NoEnv, ShellLex};
use crate::model::*;
use crate::mount;

/// The instruction keywords BuildKit knows, upper case.
pub const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// The upper-case keyword for `cmd` if it is a known instruction (case-insensitive).
fn keyword(cmd: &str) -> Option<&'static str> {
    INSTRUCTIONS
        .iter()
        .copied()
        .find(|k| k.eq_ignore_ascii_case(cmd))
}

/// A logical line turned into BuildKit's node: command, flags, arguments.
#[derive(Debug, Clone)]
struct Node<'a> {
    cmd: String,
    flags: Vec<String>,
    args: Vec<String>,
    kvs: Vec<KeyValue>,
    json: bool,
    original: String,
    heredocs: Vec<Heredoc>,
    sub: Option<Box<Node<'a>>>,
    span: Span,
    first_line: &'a str,
}

struct Directive {
    done: bool,
    seen: Vec<String>,
}

struct Ctx<'a> {
    file: &'a str,
    escape: char,
    directives: Directives,
    dir: Directive,
    diags: Vec<Diagnostic>,
}

/// Result of the line-level pass: nodes in order.
struct Ast<'a> {
    nodes: Vec<Node<'a>>,
}

fn is_ws_go_split(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    trim_newline(line).trim_start().starts_with('#')
}

impl<'a> Ctx<'a> {
    fn new(file: &'a str) -> Self {
        Ctx {
            file,
            escape: '\\',
            directives: Directives::default(),
            dir: Directive {
                done: false,
                seen: Vec::new(),
            },
            diags: Vec::new(),
        }
    }

    fn diag(
        &self,
        line: usize,
        end_line: usize,
        column: usize,
        snippet: &str,
        message: String,
        expected: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: self.file.to_string(),
            line,
            column,
            end_line,
            snippet: snippet.to_string(),
            message,
            expected,
        }
    }

    /// BuildKit's directive parser, fed every non-heredoc line.
    fn directive_line(&mut self, token: &str, line_no: usize) -> Result<(), Diagnostic> {
        if self.dir.done {
            return Ok(());
        }
        let Some((name, value)) = match_directive(token) else {
            self.dir.done = true;
            return Ok(());
        };
        let key = name.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.dir.done = true;
            return Ok(());
        }
        let col = token
            .find('#')
            .map_or(1, |i| token[..i].chars().count() + 1);
        if self.dir.seen.contains(&key) {
            return Err(self.diag(
                line_no,
                line_no,
                col,
                token,
                format!("only one {key} parser directive can be used"),
                None,
            ));
        }
        self.dir.seen.push(key.clone());
        match key.as_str() {
            "escape" => {
                if value != "`" && value != "\\" {
                    return Err(self.diag(
                        line_no,
                        line_no,
                        col,
                        value,
                        format!("invalid escape token '{value}' does not match ` or \\"),
                        Some("`\\` or `` ` ``".into()),
                    ));
                }
                self.escape = value.chars().next().unwrap_or('\\');
                self.directives.escape = Some(self.escape);
            }
            "syntax" => self.directives.syntax = Some(value.to_string()),
            _ => self.directives.check = Some(value.to_string()),
        }
        Ok(())
    }

    /// Removes a trailing escape (line continuation); returns (line, is_end_of_line).
    fn trim_continuation<'s>(&self, s: &'s str) -> (&'s str, bool) {
        let t = s.trim_end_matches([' ', '\t']);
        match t.strip_suffix(self.escape) {
            Some(r) => (r, false),
            None => (s, true),
        }
    }
}

/// Go regexp `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`.
fn match_directive(line: &str) -> Option<(&str, &str)> {
    let is_sp = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r');
    let rest = line.strip_prefix('#')?.trim_start_matches(is_sp);
    let name_len = rest
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_alphabetic() || (*i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let name = &rest[..name_len];
    let rest = rest[name_len..]
        .trim_start_matches(is_sp)
        .strip_prefix('=')?;
    let value = rest.trim_start_matches(is_sp).trim_end_matches(is_sp);
    if value.is_empty() || value.contains('\n') {
        return None;
    }
    Some((name, value))
}

/// BuildKit `extractBuilderFlags`: leading `--flag` words (quotes and `\` processed), then the
/// rest of the line.
fn extract_builder_flags(line: &str) -> (String, Vec<String>) {
    // Fast path: most lines have no flags.
    let trimmed = line.trim_start();
    if !trimmed.starts_with("--") {
        return (trimmed.to_string(), Vec::new());
    }
    // Byte-wise like BuildKit; every special character is ASCII, so the words stay UTF-8.
    #[derive(PartialEq)]
    enum Ph {
        Spaces,
        Word,
        Quote,
    }
    let b = line.as_bytes();
    let n = b.len();
    let mut words = Vec::new();
    let mut phase = Ph::Spaces;
    let mut word: Vec<u8> = Vec::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut pos = 0;
    let to_s = |w: &mut Vec<u8>| String::from_utf8(std::mem::take(w)).unwrap_or_default();
    while pos <= n {
        let ch = if pos < n { b[pos] } else { 0 };
        if phase == Ph::Spaces {
            if pos == n {
                break;
            }
            if ch.is_ascii_whitespace() || ch == 0x0b {
                pos += 1;
                continue;
            }
            if !line.is_char_boundary(pos) {
                pos += 1;
                continue;
            }
            if let Some(c) = line[pos..]
                .chars()
                .next()
                .filter(|c| !c.is_ascii() && c.is_whitespace())
            {
                pos += c.len_utf8();
                continue;
            }
            if ch != b'-' || pos + 1 == n || b[pos + 1] != b'-' {
                return (line[pos..].to_string(), words);
            }
            phase = Ph::Word;
        }
        if (phase == Ph::Word || phase == Ph::Quote) && pos == n {
            if word != b"--" && (blank_ok || !word.is_empty()) {
                words.push(to_s(&mut word));
            }
            break;
        }
        if phase == Ph::Word {
            if ch.is_ascii_whitespace() || ch == 0x0b {
                phase = Ph::Spaces;
                if word == b"--" {
                    return (line[pos..].to_string(), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(to_s(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Ph::Quote;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if ch == b'\\' {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = b[pos];
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // in quote
        if ch == quote {
            phase = Ph::Word;
            pos += 1;
            continue;
        }
        let mut c = ch;
        if ch == b'\\' {
            if pos + 1 == n {
                phase = Ph::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = b[pos];
        }
        word.push(c);
        pos += 1;
    }
    (String::new(), words)
}

/// BuildKit `parseWords`: split on whitespace, keeping quotes and escapes in the words.
///
/// Every character is kept but an escape at the very end, so each word is a slice of `rest`.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Ph {
        Spaces,
        Word,
        Quote,
    }
    let mut words = Vec::new();
    let mut phase = Ph::Spaces;
    let mut start = 0;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut it = rest.char_indices().peekable();
    while let Some((pos, ch)) = it.next() {
        if phase == Ph::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Ph::Word;
            start = pos;
        }
        if phase == Ph::Word {
            if ch.is_whitespace() {
                phase = Ph::Spaces;
                if blank_ok || pos > start {
                    words.push(rest[start..pos].to_string());
                }
                blank_ok = false;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Ph::Quote;
                if ch == escape {
                    // cannot happen with the allowed escape characters
                    continue;
                }
                continue;
            }
            if ch == escape {
                if it.peek().is_none() {
                    // an escape at the end is dropped
                    if blank_ok || pos > start {
                        words.push(rest[start..pos].to_string());
                    }
                    return words;
                }
                it.next();
            }
            continue;
        }
        // in quote
        if ch == quote {
            phase = Ph::Word;
            continue;
        }
        if ch == escape && quote != '\'' {
            if it.peek().is_none() {
                if blank_ok || pos > start {
                    words.push(rest[start..pos].to_string());
                }
                return words;
            }
            it.next();
        }
    }
    if phase != Ph::Spaces && (blank_ok || rest.len() > start) {
        words.push(rest[start..].to_string());
    }
    words
}

pub(crate) enum JsonResult {
    NotJson,
    Json(Vec<String>),
    NotStrings,
}

pub(crate) fn parse_json(rest: &str) -> JsonResult {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return JsonResult::NotJson;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(t) {
        Err(_) => JsonResult::NotJson,
        Ok(vals) => {
            let mut out = Vec::with_capacity(vals.len());
            for v in vals {
                match v {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return JsonResult::NotStrings,
                }
            }
            JsonResult::Json(out)
        }
    }
}

const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

fn split_ws(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(is_ws_go_split)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses one logical line into a node (BuildKit `newNodeFromLine`).
fn node_from_line<'a>(
    line: &str,
    escape: char,
    span: Span,
    first_line: &'a str,
) -> Result<Node<'a>, String> {
    let trimmed = line.trim();
    let (cmd, rest) = match trimmed.find(is_ws_go_split) {
        Some(i) => {
            let rest = trimmed[i..].trim_start_matches(is_ws_go_split);
            (&trimmed[..i], rest)
        }
        None => (trimmed, ""),
    };
    let (args_str, flags) = if rest.is_empty() && !trimmed.contains(is_ws_go_split) {
        (String::new(), Vec::new())
    } else {
        extract_builder_flags(rest)
    };
    let rest = args_str.trim();
    let mut node = Node {
        cmd: cmd.to_string(),
        flags,
        args: Vec::new(),
        kvs: Vec::new(),
        json: false,
        original: line.to_string(),
        heredocs: Vec::new(),
        sub: None,
        span,
        first_line,
    };
    let upper = keyword(cmd).unwrap_or("");
    match upper {
        "ADD" | "COPY" | "VOLUME" => match parse_json(rest) {
            JsonResult::Json(v) => {
                node.args = v;
                node.json = true;
            }
            JsonResult::NotStrings => return Err(NOT_STRING_ARRAY.into()),
            JsonResult::NotJson => node.args = split_ws(rest),
        },
        "CMD" | "ENTRYPOINT" | "RUN" | "SHELL" if !rest.is_empty() => match parse_json(rest) {
            JsonResult::Json(v) => {
                node.args = v;
                node.json = true;
            }
            JsonResult::NotStrings => return Err(NOT_STRING_ARRAY.into()),
            JsonResult::NotJson => node.args = vec![rest.to_string()],
        },
        "ARG" => node.args = parse_words(rest, escape),
        "ENV" | "LABEL" => node.kvs = parse_name_val(rest, upper, escape)?,
        "EXPOSE" | "FROM" => node.args = split_ws(rest),
        "HEALTHCHECK" => {
            let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
            if sep > 0 {
                let typ = &rest[..sep];
                let after = rest[sep..].trim_start();
                node.args.push(typ.to_string());
                if !after.is_empty() {
                    match parse_json(after) {
                        JsonResult::Json(v) => {
                            node.args.extend(v);
                            node.json = true;
                        }
                        JsonResult::NotStrings => return Err(NOT_STRING_ARRAY.into()),
                        JsonResult::NotJson => node.args.push(after.to_string()),
                    }
                }
            }
        }
        "MAINTAINER" | "STOPSIGNAL" | "USER" | "WORKDIR" if !rest.is_empty() => {
            node.args = vec![rest.to_string()];
        }
        "ONBUILD" if !rest.is_empty() => {
            let sub = node_from_line(rest, escape, span, first_line)?;
            node.args.push(sub.cmd.clone());
            node.sub = Some(Box::new(sub));
        }
        _ => {}
    }
    Ok(node)
}

/// BuildKit `parseNameVal` for ENV and LABEL.
fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<KeyValue>, String> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    if !words[0].contains('=') {
        let parts: Vec<&str> = match rest.find(is_ws_go_split) {
            Some(i) => vec![&rest[..i], rest[i..].trim_start_matches(is_ws_go_split)],
            None => vec![rest],
        };
        if parts.len() < 2 {
            return Err(format!("{key} must have two arguments"));
        }
        return Ok(vec![KeyValue {
            key: parts[0].to_string(),
            value: parts[1].to_string(),
            legacy: true,
        }]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            ));
        };
        out.push(KeyValue {
            key: k.to_string(),
            value: v.to_string(),
            legacy: false,
        });
    }
    Ok(out)
}

/// BuildKit `ParseHeredoc`: is `word` a heredoc delimiter (`<<EOF`, `<<-"EOF"`, `3<<EOF`)?
pub(crate) fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.chars().take_while(char::is_ascii_digit).count();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, after),
    };
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    let fd = word[..digits].parse::<u32>().unwrap_or(0);
    let mut lex = ShellLex::new('\\');
    lex.skip_unset_env = true;
    let words = lex.process_words(rest, &NoEnv).map_err(|e| e.to_string())?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw = lex.process_words(rest, &NoEnv).map_err(|e| e.to_string())?;
    if raw.len() != words.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let count = |s: &str| s.matches(['\'', '"']).count();
    let expand = count(&words[0]) == count(&raw[0]);
    Ok(Some(Heredoc {
        token: word.to_string(),
        name: words[0].clone(),
        content: String::new(),
        chomp,
        expand,
        fd,
    }))
}

pub(crate) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let mut lex = ShellLex::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    let words = lex.process_words(line, &NoEnv).unwrap_or_default();
    let mut out = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc(&w)? {
            out.push(h);
        }
    }
    Ok(out)
}

fn can_contain_heredoc(node: &Node) -> bool {
    let n = match (&node.sub, node.cmd.eq_ignore_ascii_case("onbuild")) {
        (Some(sub), true) => sub.as_ref(),
        _ => node,
    };
    matches!(n.cmd.to_ascii_lowercase().as_str(), "add" | "copy" | "run") && !n.json
}

/// The line-level pass (BuildKit `parser.Parse`).
fn parse_lines<'a>(ctx: &mut Ctx<'_>, text: &'a str) -> Result<Ast<'a>, Diagnostic> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut nodes = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        i += 1;
        let line_no = i;
        let no_nl = trim_newline(raw);
        let token = no_nl.trim_start();
        ctx.directive_line(token, line_no)?;
        let content = if is_comment(token) { "" } else { token };
        let column = no_nl[..no_nl.len() - token.len()].chars().count() + 1;
        let (first, mut eol) = ctx.trim_continuation(content);
        if eol && first.is_empty() {
            continue;
        }
        let mut logical = first.to_string();
        while !eol && i < lines.len() {
            let raw = lines[i];
            i += 1;
            let t = trim_newline(raw);
            ctx.directive_line(t, i)?;
            if is_comment(raw) {
                continue;
            }
            if t.trim_start().is_empty() {
                continue;
            }
            let (c, e) = ctx.trim_continuation(t);
            eol = e;
            logical.push_str(c);
        }
        let mut span = Span {
            start_line: line_no,
            end_line: i,
            column,
        };
        let mut node = match node_from_line(&logical, ctx.escape, span, no_nl) {
            Ok(n) => n,
            Err(msg) => {
                let d = instr_diag(ctx.file, span, no_nl, &logical, msg, None);
                ctx.diags.push(d);
                continue;
            }
        };
        if can_contain_heredoc(&node) && logical.contains("<<") {
            let docs = heredocs_from_line(&logical)
                .map_err(|msg| instr_diag(ctx.file, span, no_nl, &logical, msg, None))?;
            for mut h in docs {
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    let mut cand = trim_newline(raw);
                    if h.chomp {
                        cand = cand.trim_start_matches('\t');
                    }
                    if cand == h.name {
                        terminated = true;
                        break;
                    }
                    h.content.push_str(raw);
                }
                if !terminated {
                    let mut d = instr_diag(
                        ctx.file,
                        Span {
                            end_line: i,
                            ..span
                        },
                        no_nl,
                        &h.token,
                        format!("unterminated heredoc {:?}", h.token),
                        Some(format!(
                            "a line containing only {:?} before the end of the file",
                            h.name
                        )),
                    );
                    d.end_line = i;
                    return Err(d);
                }
                node.heredocs.push(h);
            }
            span.end_line = i;
            node.span = span;
            if let Some(sub) = &mut node.sub {
                sub.span = span;
            }
        }
        nodes.push(node);
    }
    Ok(Ast { nodes })
}

fn instr_diag(
    file: &str,
    span: Span,
    first_line: &str,
    snippet: &str,
    message: String,
    expected: Option<String>,
) -> Diagnostic {
    let column = if snippet.is_empty() {
        span.column
    } else {
        first_line
            .find(snippet)
            .map_or(span.column, |b| first_line[..b].chars().count() + 1)
    };
    Diagnostic {
        file: file.to_string(),
        line: span.start_line,
        column,
        end_line: span.end_line,
        snippet: snippet.to_string(),
        message,
        expected,
    }
}

// ---------------------------------------------------------------------------------------
// Flags (BuildKit `BFlags`).

#[derive(Clone, Copy, PartialEq)]
enum FlagType {
    Bool,
    Str,
    Strs,
}

#[derive(Default)]
struct FlagValues {
    bools: Vec<(&'static str, bool)>,
    strs: Vec<(&'static str, String)>,
    strss: Vec<(&'static str, Vec<String>)>,
}

impl FlagValues {
    fn bool(&self, n: &str) -> Option<bool> {
        self.bools.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
    }
    fn str(&self, n: &str) -> Option<String> {
        self.strs
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.clone())
    }
    fn strs(&self, n: &str) -> Vec<String> {
        self.strss
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// An error in one instruction: message, offending text, expectation.
struct IErr {
    msg: String,
    snippet: String,
    expected: Option<String>,
}

fn ierr(msg: impl Into<String>, snippet: impl Into<String>) -> IErr {
    IErr {
        msg: msg.into(),
        snippet: snippet.into(),
        expected: None,
    }
}

fn parse_flags(raw: &[String], defs: &[(&'static str, FlagType)]) -> Result<FlagValues, IErr> {
    let mut out = FlagValues::default();
    let mut used: Vec<&str> = Vec::new();
    let names = || {
        defs.iter()
            .map(|(n, _)| format!("--{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for arg in raw {
        let Some(body) = arg.strip_prefix("--") else {
            return Err(ierr(
                format!("Arg should start with -- : {arg}"),
                arg.clone(),
            ));
        };
        if arg == "--" {
            return Ok(out);
        }
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(&(def_name, ty)) = defs.iter().find(|(n, _)| *n == name) else {
            return Err(IErr {
                msg: format!("Unknown flag: {name}"),
                snippet: arg.clone(),
                expected: Some(if defs.is_empty() {
                    "no flags".into()
                } else {
                    format!("one of {}", names())
                }),
            });
        };
        if used.contains(&def_name) && ty != FlagType::Strs {
            return Err(ierr(
                format!("Duplicate flag specified: {name}"),
                arg.clone(),
            ));
        }
        used.push(def_name);
        match ty {
            FlagType::Bool => {
                if value == Some("") {
                    return Err(IErr {
                        msg: format!("Missing a value on flag: {name}"),
                        snippet: arg.clone(),
                        expected: Some(format!("--{name}, --{name}=true or --{name}=false")),
                    });
                }
                let v = match value.map(str::to_lowercase).as_deref() {
                    None => true,
                    Some("true") => true,
                    Some("false") => false,
                    Some(_) => {
                        return Err(IErr {
                            msg: format!(
                                "Expecting boolean value for flag {name}, not: {}",
                                value.unwrap_or_default()
                            ),
                            snippet: arg.clone(),
                            expected: Some("true or false".into()),
                        })
                    }
                };
                out.bools.push((def_name, v));
            }
            FlagType::Str => {
                let Some(v) = value else {
                    return Err(IErr {
                        msg: format!("Missing a value on flag: {name}"),
                        snippet: arg.clone(),
                        expected: Some(format!("--{name}=VALUE")),
                    });
                };
                out.strs.push((def_name, v.to_string()));
            }
            FlagType::Strs => {
                let Some(v) = value else {
                    return Err(IErr {
                        msg: format!("Missing a value on flag: {name}"),
                        snippet: arg.clone(),
                        expected: Some(format!("--{name}=VALUE")),
                    });
                };
                match out.strss.iter_mut().find(|(k, _)| *k == def_name) {
                    Some((_, vs)) => vs.push(v.to_string()),
                    None => out.strss.push((def_name, vec![v.to_string()])),
                }
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Typed instructions (BuildKit `instructions.ParseInstruction`).

enum Parsed {
    From(From, Option<String>),
    Instr(Instruction),
}

fn at_least_one(cmd: &str) -> IErr {
    IErr {
        msg: format!("{cmd} requires at least one argument"),
        snippet: cmd.to_string(),
        expected: Some("an argument".into()),
    }
}

fn exactly_one(cmd: &str, args: &[String]) -> IErr {
    IErr {
        msg: format!("{cmd} requires exactly one argument"),
        snippet: args.get(1).cloned().unwrap_or_else(|| cmd.to_string()),
        expected: Some("exactly one argument".into()),
    }
}

fn no_dest(cmd: &str, args: &[String]) -> IErr {
    IErr {
        msg: format!(
            "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"
        ),
        snippet: args.first().cloned().unwrap_or_else(|| cmd.to_string()),
        expected: Some("one or more sources and a destination".into()),
    }
}

fn shell_or_exec(node: &Node, args: &[String]) -> ShellOrExec {
    if node.json {
        ShellOrExec::Exec(args.to_vec())
    } else {
        ShellOrExec::Shell(args.join(" "))
    }
}

fn valid_stage_name(s: &str) -> bool {
    let mut it = s.chars();
    matches!(it.next(), Some(c) if c.is_ascii_lowercase())
        && it.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn parse_sources(
    args: &[String],
    heredocs: &[Heredoc],
    cmd: &str,
) -> Result<(Vec<CopySource>, String), IErr> {
    let (srcs, dest) = args.split_at(args.len() - 1);
    let dest = dest[0].clone();
    if matches!(parse_heredoc(&dest), Ok(Some(_))) {
        return Err(IErr {
            msg: format!("{cmd} cannot accept a heredoc as a destination"),
            snippet: dest,
            expected: Some("a destination path".into()),
        });
    }
    let mut out = Vec::new();
    for s in srcs {
        match parse_heredoc(s) {
            Ok(Some(mut h)) => {
                if let Some(body) = heredocs.iter().rev().find(|d| d.name == h.name) {
                    h.content = body.content.clone();
                }
                out.push(CopySource::Heredoc(h));
            }
            _ => out.push(CopySource::Path(s.clone())),
        }
    }
    Ok((out, dest))
}

fn opt_interval(fl: &FlagValues, name: &str) -> Result<Option<i64>, IErr> {
    let Some(v) = fl.str(name) else {
        return Ok(None);
    };
    if v.is_empty() {
        return Ok(None);
    }
    let d = mount::parse_go_duration(&v).map_err(|e| IErr {
        msg: e,
        snippet: v.clone(),
        expected: Some("a duration such as 30s, 1m30s or 500ms".into()),
    })?;
    if d != 0 && d < 1_000_000 {
        return Err(IErr {
            msg: format!("Interval {name:?} cannot be less than 1ms"),
            snippet: v,
            expected: Some("a duration of at least 1ms".into()),
        });
    }
    Ok(Some(d))
}

fn to_typed(node: &mut Node<'_>, escape: char) -> Result<Parsed, IErr> {
    use FlagType::*;
    let upper = keyword(&node.cmd).unwrap_or("");
    let args = std::mem::take(&mut node.args);
    let args = &args;
    let kind = match upper {
        "FROM" => {
            let name = match args.len() {
                3 if args[1].eq_ignore_ascii_case("as") => {
                    let n = args[2].to_lowercase();
                    if !valid_stage_name(&n) {
                        return Err(IErr {
                            msg: format!(
                                "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                                args[2]
                            ),
                            snippet: args[2].clone(),
                            expected: Some("a name matching [a-z][a-z0-9-_.]*".into()),
                        });
                    }
                    Some(n)
                }
                1 => None,
                _ => {
                    return Err(IErr {
                        msg: "FROM requires either one or three arguments".into(),
                        snippet: args.get(1).cloned().unwrap_or_else(|| "FROM".into()),
                        expected: Some("FROM [--platform=PLATFORM] IMAGE [AS NAME]".into()),
                    })
                }
            };
            let fl = parse_flags(&node.flags, &[("platform", Str)])?;
            return Ok(Parsed::From(
                From {
                    image: args[0].clone(),
                    platform: fl.str("platform"),
                    alias: if args.len() == 3 {
                        Some(args[2].clone())
                    } else {
                        None
                    },
                    span: node.span,
                    original: node.original.trim().to_string(),
                },
                name,
            ));
        }
        "ENV" | "LABEL" => {
            parse_flags(&node.flags, &[])?;
            if node.kvs.is_empty() {
                return Err(at_least_one(upper));
            }
            if node.kvs.iter().any(|kv| kv.key.is_empty()) {
                return Err(ierr(format!("{upper} names can not be blank"), "="));
            }
            if upper == "ENV" {
                InstructionKind::Env {
                    vars: std::mem::take(&mut node.kvs),
                }
            } else {
                InstructionKind::Label {
                    labels: std::mem::take(&mut node.kvs),
                }
            }
        }
        "MAINTAINER" => {
            if args.len() != 1 {
                return Err(exactly_one(upper, args));
            }
            parse_flags(&node.flags, &[])?;
            InstructionKind::Maintainer {
                maintainer: args[0].clone(),
            }
        }
        "ADD" => {
            if args.len() < 2 {
                return Err(no_dest("ADD", args));
            }
            let fl = parse_flags(
                &node.flags,
                &[
                    ("exclude", Strs),
                    ("chown", Str),
                    ("chmod", Str),
                    ("link", Bool),
                    ("keep-git-dir", Bool),
                    ("checksum", Str),
                    ("unpack", Bool),
                ],
            )?;
            let (sources, dest) = parse_sources(args, &node.heredocs, "ADD")?;
            InstructionKind::Add {
                sources,
                dest,
                json: node.json,
                chown: fl.str("chown"),
                chmod: fl.str("chmod"),
                link: fl.bool("link").unwrap_or(false),
                keep_git_dir: fl.bool("keep-git-dir").unwrap_or(false),
                checksum: fl.str("checksum"),
                unpack: fl.bool("unpack"),
                exclude: fl.strs("exclude"),
            }
        }
        "COPY" => {
            if args.len() < 2 {
                return Err(no_dest("COPY", args));
            }
            let fl = parse_flags(
                &node.flags,
                &[
                    ("exclude", Strs),
                    ("parents", Bool),
                    ("chown", Str),
                    ("from", Str),
                    ("chmod", Str),
                    ("link", Bool),
                ],
            )?;
            let (sources, dest) = parse_sources(args, &node.heredocs, "COPY")?;
            InstructionKind::Copy {
                sources,
                dest,
                json: node.json,
                from: fl.str("from"),
                chown: fl.str("chown"),
                chmod: fl.str("chmod"),
                link: fl.bool("link").unwrap_or(false),
                parents: fl.bool("parents").unwrap_or(false),
                exclude: fl.strs("exclude"),
            }
        }
        "ONBUILD" => {
            let Some(sub) = &node.sub else {
                return Err(at_least_one("ONBUILD"));
            };
            parse_flags(&node.flags, &[])?;
            let trigger = sub.cmd.trim().to_ascii_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err(IErr {
                        msg: "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                        snippet: sub.cmd.clone(),
                        expected: Some(
                            "an instruction other than ONBUILD, FROM or MAINTAINER".into(),
                        ),
                    })
                }
                "MAINTAINER" | "FROM" => {
                    return Err(IErr {
                        msg: format!("{trigger} isn't allowed as an ONBUILD trigger"),
                        snippet: sub.cmd.clone(),
                        expected: Some(
                            "an instruction other than ONBUILD, FROM or MAINTAINER".into(),
                        ),
                    })
                }
                _ => {}
            }
            let mut expression = strip_onbuild(&node.original).to_string();
            for h in &node.heredocs {
                expression.push('\n');
                expression.push_str(&h.content);
                expression.push_str(&h.name);
            }
            let mut sub = node
                .sub
                .take()
                .map(|b| *b)
                .unwrap_or_else(|| unreachable!("checked above"));
            sub.heredocs = std::mem::take(&mut node.heredocs);
            // BuildKit only checks the trigger's keyword here; the trigger itself is parsed when
            // a child image builds. So does this: an invalid trigger is kept as an expression.
            let trigger = match to_typed(&mut sub, escape) {
                Ok(Parsed::Instr(i)) => Some(Box::new(i)),
                Ok(Parsed::From(..)) | Err(_) => None,
            };
            InstructionKind::Onbuild {
                expression,
                trigger,
            }
        }
        "WORKDIR" => {
            if args.len() != 1 {
                return Err(exactly_one(upper, args));
            }
            parse_flags(&node.flags, &[])?;
            InstructionKind::Workdir {
                path: args[0].clone(),
            }
        }
        "RUN" => {
            let fl = parse_flags(
                &node.flags,
                &[("mount", Strs), ("network", Str), ("security", Str)],
            )?;
            let mut mounts = Vec::new();
            for spec in fl.strs("mount") {
                let options = if spec.contains('$') {
                    mount::check_mount_syntax(&spec).map_err(|e| IErr {
                        msg: e,
                        snippet: spec.clone(),
                        expected: Some("type=bind|cache|tmpfs|secret|ssh,key=value,...".into()),
                    })?;
                    None
                } else {
                    Some(
                        mount::parse_mount(&spec, &mut |s| Ok(s.to_string())).map_err(|e| {
                            IErr {
                                msg: e,
                                snippet: spec.clone(),
                                expected: Some("a valid mount specification".into()),
                            }
                        })?,
                    )
                };
                mounts.push(Mount { spec, options });
            }
            let network = match fl.str("network").as_deref() {
                None => None,
                Some("default") => Some(Network::Default),
                Some("none") => Some(Network::None),
                Some("host") => Some(Network::Host),
                Some(v) => {
                    return Err(IErr {
                        msg: format!("invalid network mode {v:?}"),
                        snippet: format!("--network={v}"),
                        expected: Some("default, none or host".into()),
                    })
                }
            };
            let security = match fl.str("security").as_deref() {
                None => None,
                Some("sandbox") => Some(Security::Sandbox),
                Some("insecure") => Some(Security::Insecure),
                Some(v) => {
                    return Err(IErr {
                        msg: "security can be \"insecure\" or \"sandbox\"".into(),
                        snippet: format!("--security={v}"),
                        expected: Some("insecure or sandbox".into()),
                    })
                }
            };
            InstructionKind::Run {
                cmd: shell_or_exec(node, args),
                heredocs: std::mem::take(&mut node.heredocs),
                mounts,
                network,
                security,
            }
        }
        "CMD" => {
            parse_flags(&node.flags, &[])?;
            InstructionKind::Cmd {
                cmd: shell_or_exec(node, args),
            }
        }
        "ENTRYPOINT" => {
            parse_flags(&node.flags, &[])?;
            InstructionKind::Entrypoint {
                cmd: shell_or_exec(node, args),
            }
        }
        "HEALTHCHECK" => {
            if args.is_empty() {
                return Err(at_least_one("HEALTHCHECK"));
            }
            let typ = args[0].to_uppercase();
            let rest = &args[1..];
            if typ == "NONE" {
                if !rest.is_empty() {
                    return Err(IErr {
                        msg: "HEALTHCHECK NONE takes no arguments".into(),
                        snippet: rest[0].clone(),
                        expected: Some("nothing after NONE".into()),
                    });
                }
                InstructionKind::Healthcheck {
                    check: Healthcheck::None,
                }
            } else {
                let fl = parse_flags(
                    &node.flags,
                    &[
                        ("interval", Str),
                        ("timeout", Str),
                        ("start-period", Str),
                        ("start-interval", Str),
                        ("retries", Str),
                    ],
                )?;
                if typ != "CMD" {
                    return Err(IErr {
                        msg: format!("Unknown type {:?} in HEALTHCHECK (try CMD)", typ),
                        snippet: args[0].clone(),
                        expected: Some("CMD or NONE".into()),
                    });
                }
                if rest.is_empty() {
                    return Err(IErr {
                        msg: "Missing command after HEALTHCHECK CMD".into(),
                        snippet: args[0].clone(),
                        expected: Some("a command".into()),
                    });
                }
                let retries = match fl.str("retries") {
                    None => None,
                    Some(v) if v.is_empty() => None,
                    Some(v) => {
                        let n = parse_go_int32(&v).map_err(|e| IErr {
                            msg: e,
                            snippet: v.clone(),
                            expected: Some("a non-negative integer".into()),
                        })?;
                        if n < 0 {
                            return Err(IErr {
                                msg: format!("--retries cannot be negative ({n})"),
                                snippet: v,
                                expected: Some("a non-negative integer".into()),
                            });
                        }
                        Some(n)
                    }
                };
                InstructionKind::Healthcheck {
                    check: Healthcheck::Cmd {
                        cmd: shell_or_exec(node, rest),
                        interval: opt_interval(&fl, "interval")?,
                        timeout: opt_interval(&fl, "timeout")?,
                        start_period: opt_interval(&fl, "start-period")?,
                        start_interval: opt_interval(&fl, "start-interval")?,
                        retries,
                    },
                }
            }
        }
        "EXPOSE" => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            parse_flags(&node.flags, &[])?;
            let mut ports = args.clone();
            ports.sort();
            InstructionKind::Expose { ports }
        }
        "USER" => {
            if args.len() != 1 {
                return Err(exactly_one(upper, args));
            }
            parse_flags(&node.flags, &[])?;
            InstructionKind::User {
                user: args[0].clone(),
            }
        }
        "VOLUME" => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            parse_flags(&node.flags, &[])?;
            let mut volumes = Vec::new();
            for v in args {
                let v = v.trim();
                if v.is_empty() {
                    return Err(IErr {
                        msg: "VOLUME specified can not be an empty string".into(),
                        snippet: "\"\"".into(),
                        expected: Some("a path".into()),
                    });
                }
                volumes.push(v.to_string());
            }
            InstructionKind::Volume {
                volumes,
                json: node.json,
            }
        }
        "STOPSIGNAL" => {
            if args.len() != 1 {
                return Err(exactly_one(upper, args));
            }
            InstructionKind::Stopsignal {
                signal: args[0].clone(),
            }
        }
        "ARG" => {
            if args.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let mut defs = Vec::new();
            for a in args {
                match a.split_once('=') {
                    Some(("", _)) => return Err(ierr("ARG names can not be blank", a.clone())),
                    Some((k, v)) => defs.push(ArgDef {
                        name: k.to_string(),
                        default: Some(v.to_string()),
                    }),
                    None => defs.push(ArgDef {
                        name: a.clone(),
                        default: None,
                    }),
                }
            }
            InstructionKind::Arg { args: defs }
        }
        "SHELL" => {
            parse_flags(&node.flags, &[])?;
            if args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err(IErr {
                    msg: "SHELL requires the arguments to be in JSON form".into(),
                    snippet: args.join(" "),
                    expected: Some("a JSON array such as [\"/bin/sh\", \"-c\"]".into()),
                });
            }
            InstructionKind::Shell {
                shell: args.clone(),
            }
        }
        _ => {
            let hint = suggest(&node.cmd.to_ascii_uppercase())
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            return Err(IErr {
                msg: format!("unknown instruction {:?}{hint}", node.cmd),
                snippet: node.cmd.clone(),
                expected: Some(format!("one of {}", INSTRUCTIONS.join(", "))),
            });
        }
    };
    let _ = escape;
    Ok(Parsed::Instr(Instruction {
        span: node.span,
        original: std::mem::take(&mut node.original),
        kind,
    }))
}

/// The Levenshtein distance between `a` and `b` (in characters): how "did you mean"
/// suggestions, here and for hoist's other names, pick the closest known spelling.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known instruction closest to `word`, if it is a likely typo.
fn suggest(word: &str) -> Option<&'static str> {
    if word.chars().count() > 32 {
        return None;
    }
    INSTRUCTIONS
        .iter()
        .map(|i| (edit_distance(word, i), *i))
        .filter(|(d, i)| *d <= 2 && *d < i.len())
        .min()
        .map(|(_, i)| i)
}

/// Go regexp `(?i)^\s*ONBUILD\s*` removed.
fn strip_onbuild(s: &str) -> &str {
    let t = s.trim_start();
    if t.len() >= 7 && t[..7].eq_ignore_ascii_case("onbuild") {
        t[7..].trim_start()
    } else {
        s
    }
}

/// Go's `strconv.ParseInt(s, 10, 32)`.
fn parse_go_int32(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseInt: parsing {s:?}: invalid syntax"));
    }
    match s.parse::<i64>() {
        Ok(n) if i32::try_from(n).is_ok() => Ok(n),
        _ => Err(format!(
            "strconv.ParseInt: parsing {s:?}: value out of range"
        )),
    }
}

/// The most stages a Dockerfile may have. Real files have a handful (large monorepo
/// files a few dozen); a hostile chain of thousands (`FROM s0 AS s1`, …) would make
/// building them nest that deep.
pub const MAX_STAGES: usize = 256;

/// Parses a whole Dockerfile.
pub(crate) fn parse_dockerfile(text: &str, file: &str) -> Result<Dockerfile, Error> {
    let mut ctx = Ctx::new(file);
    let ast = parse_lines(&mut ctx, text).map_err(|d| {
        let mut all = std::mem::take(&mut ctx.diags);
        all.push(d);
        Error { diagnostics: all }
    })?;
    let escape = ctx.escape;
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let had_nodes = !ast.nodes.is_empty() || !ctx.diags.is_empty();
    for mut node in ast.nodes {
        match to_typed(&mut node, escape) {
            Err(e) => {
                let d = instr_diag(
                    file,
                    node.span,
                    node.first_line,
                    &e.snippet,
                    e.msg,
                    e.expected,
                );
                ctx.diags.push(d);
            }
            Ok(Parsed::From(from, name)) => stages.push(Stage {
                name,
                span: from.span,
                from,
                instructions: Vec::new(),
            }),
            Ok(Parsed::Instr(i)) => match stages.last_mut() {
                Some(st) => {
                    st.span.end_line = i.span.end_line;
                    st.instructions.push(i);
                }
                None if matches!(i.kind, InstructionKind::Arg { .. }) => global_args.push(i),
                None => {
                    let d = instr_diag(
                        file,
                        node.span,
                        node.first_line,
                        &node.cmd,
                        "no build stage in current context".into(),
                        Some("a FROM instruction before any other instruction but ARG".into()),
                    );
                    ctx.diags.push(d);
                }
            },
        }
    }
    if !ctx.diags.is_empty() {
        ctx.diags.sort_by_key(|d| (d.line, d.column));
        return Err(Error {
            diagnostics: ctx.diags,
        });
    }
    let lines = text.lines().count().max(1);
    if !had_nodes {
        return Err(Error::single(Diagnostic {
            file: file.to_string(),
            line: lines,
            column: 1,
            end_line: lines,
            snippet: String::new(),
            message: "file with no instructions".into(),
            expected: Some("at least a FROM instruction".into()),
        }));
    }
    if let Some(extra) = stages.get(MAX_STAGES) {
        return Err(Error::single(Diagnostic {
            file: file.to_string(),
            line: extra.span.start_line,
            column: 1,
            end_line: extra.span.start_line,
            snippet: String::new(),
            message: format!(
                "too many build stages: {} (at most {MAX_STAGES})",
                stages.len()
            ),
            expected: Some(format!("at most {MAX_STAGES} FROM instructions")),
        }));
    }
    if stages.is_empty() {
        return Err(Error::single(Diagnostic {
            file: file.to_string(),
            line: lines,
            column: 1,
            end_line: lines,
            snippet: String::new(),
            message: "dockerfile contains no stages to build".into(),
            expected: Some("a FROM instruction".into()),
        }));
    }
    tracing::debug!(file, stages = stages.len(), "parsed Dockerfile");
    Ok(Dockerfile {
        directives: ctx.directives,
        global_args,
        stages,
    })
}

/// Parses one instruction (an `ONBUILD` trigger as stored in an image config).
pub(crate) fn parse_single(text: &str, file: &str) -> Result<Instruction, Error> {
    let mut ctx = Ctx::new(file);
    ctx.dir.done = true;
    let ast = parse_lines(&mut ctx, text).map_err(Error::single)?;
    if let Some(d) = ctx.diags.pop() {
        return Err(Error::single(d));
    }
    if ast.nodes.len() != 1 {
        return Err(Error::single(Diagnostic {
            file: file.to_string(),
            line: 1,
            column: 1,
            end_line: text.lines().count().max(1),
            snippet: text.to_string(),
            message: "onbuild trigger should be a single expression".into(),
            expected: Some("exactly one instruction".into()),
        }));
    }
    let mut nodes = ast.nodes;
    let node = &mut nodes[0];
    match to_typed(node, '\\') {
        Ok(Parsed::Instr(i)) => Ok(i),
        Ok(Parsed::From(..)) => Err(Error::single(instr_diag(
            file,
            node.span,
            node.first_line,
            &node.cmd,
            "FROM isn't allowed as an ONBUILD trigger".into(),
            None,
        ))),
        Err(e) => Err(Error::single(instr_diag(
            file,
            node.span,
            node.first_line,
            &e.snippet,
            e.msg,
            e.expected,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_extraction() {
        let (rest, flags) = extract_builder_flags("--from=a --chown=\"x y\" src dst");
        assert_eq!(rest, "src dst");
        assert_eq!(flags, ["--from=a", "--chown=x y"]);
        let (rest, flags) = extract_builder_flags("-- --x");
        assert_eq!(rest, " --x");
        assert!(flags.is_empty());
    }

    #[test]
    fn words() {
        assert_eq!(
            parse_words("a=\"b c\" d='e f'", '\\'),
            ["a=\"b c\"", "d='e f'"]
        );
        assert_eq!(parse_words("a=b\\ c", '\\'), ["a=b\\ c"]);
    }

    #[test]
    fn heredoc_words() {
        let h = parse_heredoc("<<-\"EOF\"").unwrap().unwrap();
        assert!(h.chomp && !h.expand);
        assert_eq!(h.name, "EOF");
        assert!(parse_heredoc("<<").unwrap().is_none());
        assert!(parse_heredoc("<<<x").unwrap().is_none());
        assert_eq!(parse_heredoc("3<<X").unwrap().unwrap().fd, 3);
    }

    #[test]
    fn directives() {
        assert_eq!(match_directive("# escape = `"), Some(("escape", "`")));
        assert_eq!(
            match_directive("#syntax=docker/dockerfile:1  "),
            Some(("syntax", "docker/dockerfile:1"))
        );
        assert_eq!(match_directive("# hello"), None);
    }
}
