//! Variable expansion and word splitting, as BuildKit's `shell.Lex` does it.
//!
//! BuildKit does not run a shell to expand `$VAR` in Dockerfile instructions: it has its own
//! small lexer (`frontend/dockerfile/shell/lex.go`). [`ShellLex`] reproduces it, quirks
//! included: `$V`, `${V}`, `${V:-w}`, `${V-w}`, `${V:+w}`, `${V+w}`, `${V:?m}`, `${V?m}`,
//! `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`, `${V/p/r}`, `${V//p/r}`, single and double
//! quotes, the escape character (`\` or `` ` ``), and word splitting after expansion.
//!
//! ```
//! use hoist_dockerfile::lex::ShellLex;
//! use std::collections::BTreeMap;
//!
//! let env = BTreeMap::from([("NAME".to_string(), "world".to_string())]);
//! let lex = ShellLex::new('\\');
//! assert_eq!(lex.process_word("hello-${NAME:-x}", &env).unwrap(), "hello-world");
//! assert_eq!(lex.process_words("a \"b c\" $NAME", &env).unwrap(), ["a", "b c", "world"]);
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// How deeply `${…}` expansions and quotes may nest in one word. Real Dockerfiles nest a
/// handful of levels; a hostile one nesting ten thousand would exhaust the stack.
pub const MAX_NESTING: usize = 64;

/// The largest expanded word, in bytes (16 MiB). A word doubling a variable on every
/// `ENV A=$A$A` line would otherwise grow without bound; no exec argument can exceed
/// the kernel's 128 KiB per string anyway, and heredoc bodies stay far below this.
pub const MAX_WORD_BYTES: usize = 16 << 20;

/// A source of variables for expansion.
///
/// Implemented for maps and for `K=V` lists (as found in image configs, where the last
/// definition of a key wins, like BuildKit's `BuildEnvs`).
pub trait EnvLookup {
    /// The value of `key`, or `None` when the variable is unset.
    fn lookup(&self, key: &str) -> Option<String>;
}

impl EnvLookup for BTreeMap<String, String> {
    fn lookup(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

impl<S: std::hash::BuildHasher> EnvLookup for HashMap<String, String, S> {
    fn lookup(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

impl EnvLookup for [String] {
    fn lookup(&self, key: &str) -> Option<String> {
        self.iter().rev().find_map(|kv| match kv.split_once('=') {
            Some((k, v)) if k == key => Some(v.to_string()),
            None if kv == key => Some(String::new()),
            _ => None,
        })
    }
}

impl EnvLookup for Vec<String> {
    fn lookup(&self, key: &str) -> Option<String> {
        self.as_slice().lookup(key)
    }
}

impl<F: Fn(&str) -> Option<String>> EnvLookup for F {
    fn lookup(&self, key: &str) -> Option<String> {
        self(key)
    }
}

/// An empty environment: every variable is unset.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnv;

impl EnvLookup for NoEnv {
    fn lookup(&self, _key: &str) -> Option<String> {
        None
    }
}

/// An expansion error. Displays as BuildKit does: `failed to process "WORD": REASON`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {:?}: {reason}", crate::error::excerpt(word, 80))]
pub struct LexError {
    /// The word being processed.
    pub word: String,
    /// What went wrong (e.g. `syntax error: missing '}'`).
    pub reason: String,
}

/// The full result of processing one word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessResult {
    /// The word with variables expanded and quotes removed, spaces kept.
    pub word: String,
    /// The same, split into words on unquoted whitespace.
    pub words: Vec<String>,
    /// Variables that were referenced and set.
    pub matched: BTreeSet<String>,
    /// Variables that were referenced and unset.
    pub unmatched: BTreeSet<String>,
}

/// BuildKit's shell lexer (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellLex {
    /// The escape character: `\` (default) or `` ` `` (set by `# escape=`).
    pub escape: char,
    /// Keep quote characters in the output (used to detect quoted heredoc delimiters).
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters (used to expand heredoc bodies).
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset_env: bool,
}

impl Default for ShellLex {
    fn default() -> Self {
        Self::new('\\')
    }
}

impl ShellLex {
    /// A lexer with the given escape character and BuildKit's default options.
    pub fn new(escape: char) -> Self {
        ShellLex {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expands `word` as one word (BuildKit `ProcessWord`): quotes removed, spaces kept.
    pub fn process_word(
        &self,
        word: &str,
        env: &(impl EnvLookup + ?Sized),
    ) -> Result<String, LexError> {
        self.process(word, env).map(|r| r.word)
    }

    /// Expands `word` and splits the result into words (BuildKit `ProcessWords`).
    pub fn process_words(
        &self,
        word: &str,
        env: &(impl EnvLookup + ?Sized),
    ) -> Result<Vec<String>, LexError> {
        self.process(word, env).map(|r| r.words)
    }

    /// Expands `word`, returning both forms and the variables used.
    pub fn process(
        &self,
        word: &str,
        env: &(impl EnvLookup + ?Sized),
    ) -> Result<ProcessResult, LexError> {
        let env_dyn: &dyn Fn(&str) -> Option<String> = &|k: &str| env.lookup(k);
        let mut sw = ShellWord {
            lex: *self,
            chars: word.chars().collect(),
            pos: 0,
            env: env_dyn,
            raw_escapes: self.raw_escapes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
            depth: 0,
        };
        let raw = sw.raw_escapes;
        match sw.process_stop_on(None, raw) {
            Ok((w, words)) => Ok(ProcessResult {
                word: w,
                words,
                matched: sw.matched,
                unmatched: sw.unmatched,
            }),
            Err(reason) => Err(LexError {
                word: word.to_string(),
                reason,
            }),
        }
    }
}

struct ShellWord<'a> {
    lex: ShellLex,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Fn(&str) -> Option<String>,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
    /// Nesting of `${…}` words and quotes being processed.
    depth: usize,
}

#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() && self.in_word {
            if !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else if !ch.is_whitespace() {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

type Res<T> = Result<T, String>;

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Res<(String, Vec<String>)> {
        if self.depth >= MAX_NESTING {
            return Err(format!(
                "expansions nest deeper than {MAX_NESTING} levels (`${{…${{…}}}}`)"
            ));
        }
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        self.depth += 1;
        let r = self.process_stop_on_inner(stop);
        self.depth -= 1;
        self.raw_escapes = saved;
        r
    }

    fn process_stop_on_inner(&mut self, stop: Option<char>) -> Res<(String, Vec<String>)> {
        let mut result = String::with_capacity(self.chars.len() - self.pos);
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            let special = ch == '$' || (!self.lex.skip_process_quotes && (ch == '\'' || ch == '"'));
            if special {
                let tmp = match ch {
                    '$' => self.process_dollar()?,
                    '\'' => self.process_single_quote()?,
                    _ => self.process_double_quote()?,
                };
                if result.len() + tmp.len() > MAX_WORD_BYTES {
                    return Err(format!(
                        "the expanded word would exceed {} MiB",
                        MAX_WORD_BYTES >> 20
                    ));
                }
                result.push_str(&tmp);
                if ch == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
            } else {
                let mut ch = self.next().unwrap_or_default();
                if ch == self.lex.escape {
                    if self.raw_escapes {
                        words.add_raw_char(ch);
                        result.push(ch);
                    }
                    match self.next() {
                        None => break,
                        Some(c) => ch = c,
                    }
                    words.add_raw_char(ch);
                } else {
                    words.add_char(ch);
                }
                result.push(ch);
            }
        }
        if let Some(s) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {s}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Res<String> {
        let mut result = String::new();
        let q = self.next().unwrap_or('\'');
        if self.lex.raw_quotes {
            result.push(q);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Res<String> {
        let mut result = String::new();
        let q = self.next().unwrap_or('"');
        if self.lex.raw_quotes {
            result.push(q);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                ch = c;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        let v = (self.env)(name);
        if v.is_some() {
            self.matched.insert(name.to_string());
        } else {
            self.unmatched.insert(name.to_string());
        }
        v
    }

    fn process_dollar(&mut self) -> Res<String> {
        self.next(); // '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            let v = self.get_env(&name);
            return Ok(match v {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // '{'
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{') | Some('}') | Some(':') => {
                return Err("syntax error: bad substitution".into())
            }
            _ => {}
        }
        let name = self.process_name();
        let first = self.next();
        let mut ch = first;
        let mut chs = String::from(first.unwrap_or('\u{FFFD}'));
        let mut null_is_unset = false;
        match first {
            Some('}') => {
                let v = self.get_env(&name);
                Ok(match v {
                    Some(v) => v,
                    None if self.lex.skip_unset_env => format!("${{{name}}}"),
                    None => String::new(),
                })
            }
            Some(':') | Some('+') | Some('-') | Some('?') | Some('#') | Some('%') => {
                if first == Some(':') {
                    null_is_unset = true;
                    ch = self.next();
                    chs.push(ch.unwrap_or('\u{FFFD}'));
                }
                let raw = ch == Some('#') || ch == Some('%');
                let mut word = match self.process_stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '}'".into());
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let set = value.is_some();
                let value = value.unwrap_or_default();
                match ch {
                    Some('-') => Ok(if !set || (null_is_unset && value.is_empty()) {
                        word
                    } else {
                        value
                    }),
                    Some('+') => Ok(if !set || (null_is_unset && value.is_empty()) {
                        String::new()
                    } else {
                        word
                    }),
                    Some('?') => {
                        if !set {
                            let m = if word.is_empty() {
                                "is not allowed to be unset".to_string()
                            } else {
                                word
                            };
                            return Err(format!("{name}: {m}"));
                        }
                        if null_is_unset && value.is_empty() {
                            let m = if word.is_empty() {
                                "is not allowed to be empty".to_string()
                            } else {
                                word
                            };
                            return Err(format!("{name}: {m}"));
                        }
                        Ok(value)
                    }
                    Some(c @ ('%' | '#')) => {
                        let mut greedy = false;
                        if word.starts_with(c) {
                            greedy = true;
                            word.remove(0);
                        }
                        if c == '%' {
                            trim_suffix(&word, &value, greedy)
                        } else {
                            trim_prefix(&word, &value, greedy)
                        }
                    }
                    _ => Err(format!("unsupported modifier ({chs}) in substitution")),
                }
            }
            Some('/') => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let pattern = match self.process_stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '/' in ${}".into());
                        }
                        return Err(e);
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '}'".into());
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let value = value.unwrap_or_default();
                let pat = Glob::compile(&pattern, true)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                if replace_all {
                    pat.replace_all(&value, &replacement)
                } else {
                    Ok(match pat.find(&value) {
                        Some((s, e)) => format!("{}{}{}", &value[..s], replacement, &value[e..]),
                        None => value,
                    })
                }
            }
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_go_digit(ch) {
                while let Some(c) = self.peek() {
                    if !is_go_digit(c) {
                        break;
                    }
                    name.push(c);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphabetic() && !is_go_digit(ch) && ch != '_' {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }
}

/// Go's `unicode.IsDigit`: decimal digits (category Nd).
fn is_go_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && is_nd(c))
}

fn is_nd(c: char) -> bool {
    // Rust has no direct Nd test; approximate with `is_numeric` minus letter-like numbers,
    // which is exact for the decimal digit blocks that matter in practice.
    c.is_numeric()
        && !matches!(c, '\u{2150}'..='\u{218F}' | '\u{2460}'..='\u{24FF}' | '\u{00B2}' | '\u{00B3}' | '\u{00B9}' | '\u{00BC}'..='\u{00BE}')
}

// ---------------------------------------------------------------------------------------
// Shell patterns for ${V#p}, ${V%p}, ${V/p/r}: `*`, `?` and literal characters, compiled the
// way BuildKit compiles them to a Go regexp (where `.` never matches a newline).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

#[derive(Debug, Clone)]
struct Glob {
    toks: Vec<Tok>,
    greedy: bool,
}

impl Glob {
    fn tokenize(pattern: &str) -> Result<Vec<Tok>, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                '\\' => {
                    if matches!(chars.get(i), Some('}') | Some('/')) {
                        continue;
                    }
                    match chars.get(i) {
                        Some(&n @ ('*' | '?' | '\\')) => {
                            toks.push(Tok::Lit(n));
                            i += 1;
                        }
                        Some(&n) => return Err(format!("invalid escape '\\{n}'")),
                        None => return Err("invalid escape '\\%!c(int32=-1)'".into()),
                    }
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(toks)
    }

    fn compile(pattern: &str, greedy: bool) -> Result<Glob, String> {
        Ok(Glob {
            toks: Self::tokenize(pattern)?,
            greedy,
        })
    }

    /// Anchored match at `start` following leftmost-first (backtracking) priority; returns
    /// the end of the match.
    fn match_at(&self, s: &[char], start: usize) -> Option<usize> {
        let mut failed = std::collections::HashSet::new();
        self.m(s, 0, start, &mut failed)
    }

    fn m(
        &self,
        s: &[char],
        ti: usize,
        pos: usize,
        failed: &mut std::collections::HashSet<(usize, usize)>,
    ) -> Option<usize> {
        if ti == self.toks.len() {
            return Some(pos);
        }
        if failed.contains(&(ti, pos)) {
            return None;
        }
        let r = match self.toks[ti] {
            Tok::Lit(c) => {
                if s.get(pos) == Some(&c) {
                    self.m(s, ti + 1, pos + 1, failed)
                } else {
                    None
                }
            }
            Tok::Any => match s.get(pos) {
                Some(&c) if c != '\n' => self.m(s, ti + 1, pos + 1, failed),
                _ => None,
            },
            Tok::Star => {
                let mut max = pos;
                while max < s.len() && s[max] != '\n' {
                    max += 1;
                }
                if self.greedy {
                    (pos..=max).rev().find_map(|e| self.m(s, ti + 1, e, failed))
                } else {
                    (pos..=max).find_map(|e| self.m(s, ti + 1, e, failed))
                }
            }
        };
        if r.is_none() {
            failed.insert((ti, pos));
        }
        r
    }

    /// Leftmost match anywhere: byte offsets (start, end) in `value`.
    fn find(&self, value: &str) -> Option<(usize, usize)> {
        let chars: Vec<char> = value.chars().collect();
        let offs = byte_offsets(value);
        (0..=chars.len()).find_map(|st| self.match_at(&chars, st).map(|e| (offs[st], offs[e])))
    }

    /// Go `Regexp.ReplaceAllString` semantics (empty matches, template expansion).
    fn replace_all(&self, value: &str, repl: &str) -> Res<String> {
        let chars: Vec<char> = value.chars().collect();
        let offs = byte_offsets(value);
        let repl = expand_go_template(repl);
        let mut out = String::new();
        let mut last_end = 0usize; // char index
        let mut search = 0usize;
        while search <= chars.len() {
            let Some((a0, a1)) =
                (search..=chars.len()).find_map(|st| self.match_at(&chars, st).map(|e| (st, e)))
            else {
                break;
            };
            out.push_str(&value[offs[last_end]..offs[a0]]);
            if a1 > last_end || a0 == 0 {
                out.push_str(&repl);
            }
            if out.len() > MAX_WORD_BYTES {
                return Err(format!(
                    "the expanded word would exceed {} MiB",
                    MAX_WORD_BYTES >> 20
                ));
            }
            last_end = a1;
            let width = usize::from(search < chars.len());
            if search + width > a1 {
                search += width;
            } else if search + 1 > a1 {
                search += 1;
            } else {
                search = a1;
            }
        }
        out.push_str(&value[offs[last_end]..]);
        Ok(out)
    }
}

fn byte_offsets(s: &str) -> Vec<usize> {
    let mut v: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
    v.push(s.len());
    v
}

/// Go's `Regexp.Expand` for a pattern without capture groups: `$$` is `$`, `$name` and
/// `${name}` expand to nothing, any other `$` is literal.
fn expand_go_template(t: &str) -> String {
    let mut out = String::new();
    let mut rest = t;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
            continue;
        }
        if let Some(b) = after.strip_prefix('{') {
            if let Some(end) = b.find('}') {
                let name = &b[..end];
                if !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    rest = &b[end + 1..];
                    continue;
                }
            }
            out.push('$');
            rest = after;
            continue;
        }
        let n = after
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(after.len(), |(i, _)| i);
        if n == 0 {
            out.push('$');
            rest = after;
        } else {
            rest = &after[n..];
        }
    }
    out.push_str(rest);
    out
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Res<String> {
    let g = Glob::compile(pattern, greedy)
        .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
    let chars: Vec<char> = value.chars().collect();
    Ok(match g.match_at(&chars, 0) {
        Some(e) => chars[e..].iter().collect(),
        None => value.to_string(),
    })
}

fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Res<String> {
    let mut g = Glob::compile(pattern, greedy)
        .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
    g.toks.reverse();
    let mut chars: Vec<char> = value.chars().collect();
    chars.reverse();
    let kept: Vec<char> = match g.match_at(&chars, 0) {
        Some(e) => chars[e..].to_vec(),
        None => chars,
    };
    Ok(kept.into_iter().rev().collect())
}

impl fmt::Display for ShellLex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShellLex(escape={:?})", self.escape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("A".to_string(), "abc".to_string()),
            ("E".to_string(), String::new()),
            ("P".to_string(), "/usr/local/bin".to_string()),
        ])
    }

    #[test]
    fn basics() {
        let l = ShellLex::new('\\');
        assert_eq!(l.process_word("$A", &env()).unwrap(), "abc");
        assert_eq!(l.process_word("${P%/*}", &env()).unwrap(), "/usr/local");
        assert_eq!(l.process_word("${P##*/}", &env()).unwrap(), "bin");
        assert_eq!(
            l.process_word("${P//\\//_}", &env()).unwrap(),
            "_usr_local_bin"
        );
        assert_eq!(l.process_word("${E:-x}", &env()).unwrap(), "x");
        assert_eq!(l.process_word("${E-x}", &env()).unwrap(), "");
        assert!(l
            .process_word("${Z:?boom}", &env())
            .unwrap_err()
            .to_string()
            .contains("Z: boom"));
        assert_eq!(
            l.process_words("a  'b c' \"$A d\"", &env()).unwrap(),
            ["a", "b c", "abc d"]
        );
    }

    #[test]
    fn replace_all_empty_pattern() {
        let g = Glob::compile("", true).unwrap();
        assert_eq!(g.replace_all("abc", "X").unwrap(), "XaXbXcX");
        let g = Glob::compile("b*", true).unwrap();
        assert_eq!(g.replace_all("abbc", "X").unwrap(), "aX");
    }
}
