//! `.dockerignore` files, matched exactly as `moby/patternmatcher` (used by BuildKit) does.
//!
//! ```
//! use hoist_dockerfile::ignore::{parse_ignore_file, Matcher};
//!
//! let m = Matcher::new(&parse_ignore_file("# comment\n*.log\n!keep.log\n/build\n")).unwrap();
//! assert!(m.matches("a.log"));
//! assert!(!m.matches("keep.log"));
//! assert!(m.matches("build/out/bin"));
//! assert!(!m.matches("src/a.log")); // `*` does not cross `/`
//! ```
//!
//! Rules: lines starting with `#` are comments; blank lines are skipped; each pattern is
//! trimmed, cleaned like Go's `filepath.Clean` and a leading `/` removed; `!` makes an
//! exception. A path is excluded when the last pattern matching it, or one of its parent
//! directories, is not an exception. `*` and `?` never match `/`, `**` matches any number of
//! directories, `[...]` is a character class, `\` escapes.

/// One `.dockerignore` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The cleaned pattern, without `!`.
    pub pattern: String,
    /// A `!` exception (re-includes what earlier patterns excluded).
    pub exclusion: bool,
}

/// Reads a `.dockerignore` file (moby `ignorefile.ReadAll`).
pub fn parse_ignore_file(text: &str) -> Vec<Pattern> {
    let mut out = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let invert = p.starts_with('!');
        if invert {
            p = p[1..].trim();
        }
        let mut pat = String::new();
        if !p.is_empty() {
            pat = clean_path(p);
            if pat.len() > 1 && pat.starts_with('/') {
                pat.remove(0);
            }
        }
        out.push(Pattern {
            pattern: pat,
            exclusion: invert,
        });
    }
    out
}

/// Go's `path.Clean`.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// An error in a pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `*`: any run of characters but `/`.
    Star,
    /// `?`: one character but `/`.
    Any,
    /// `**/` or `**` inside: `(.*/)?`.
    DirStar,
    /// trailing `**`: `.*`.
    AllStar,
    /// `[...]` (negated, items).
    Class(bool, Vec<(char, char)>),
    /// a stray `^`: matches only at the start.
    Caret,
}

#[derive(Debug, Clone)]
struct Compiled {
    toks: Vec<Tok>,
    exclusion: bool,
    text: String,
}

/// A compiled set of patterns.
#[derive(Debug, Clone)]
pub struct Matcher {
    patterns: Vec<Compiled>,
}

fn compile(p: &str) -> Result<Vec<Tok>, PatternError> {
    let chars: Vec<char> = p.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                if chars.get(i) == Some(&'*') {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i >= chars.len() {
                        toks.push(Tok::AllStar);
                    } else {
                        toks.push(Tok::DirStar);
                    }
                } else {
                    toks.push(Tok::Star);
                }
            }
            '?' => toks.push(Tok::Any),
            '\\' => {
                if i < chars.len() {
                    toks.push(Tok::Lit(chars[i]));
                    i += 1;
                } else {
                    toks.push(Tok::Lit('\\'));
                }
            }
            '[' => {
                let mut neg = false;
                if chars.get(i) == Some(&'^') {
                    neg = true;
                    i += 1;
                }
                let mut items = Vec::new();
                let mut first = true;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(PatternError(format!(
                            "syntax error in pattern {p:?}: missing closing ]"
                        )));
                    };
                    i += 1;
                    if c == ']' && !first {
                        break;
                    }
                    first = false;
                    let lo = if c == '\\' {
                        let Some(&e) = chars.get(i) else {
                            return Err(PatternError(format!(
                                "syntax error in pattern {p:?}: trailing backslash"
                            )));
                        };
                        i += 1;
                        e
                    } else {
                        c
                    };
                    if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
                        let mut hi = chars[i + 1];
                        i += 2;
                        if hi == '\\' {
                            let Some(&e) = chars.get(i) else {
                                return Err(PatternError(format!(
                                    "syntax error in pattern {p:?}: trailing backslash"
                                )));
                            };
                            hi = e;
                            i += 1;
                        }
                        if hi < lo {
                            return Err(PatternError(format!(
                                "syntax error in pattern {p:?}: invalid character class range"
                            )));
                        }
                        items.push((lo, hi));
                    } else {
                        items.push((lo, lo));
                    }
                }
                toks.push(Tok::Class(neg, items));
            }
            '^' => toks.push(Tok::Caret),
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok(toks)
}

/// Does `toks[ti..]` followed by `(/.*)?$` match `s[pos..]`? With `prefix`, does some
/// continuation of `s` match (used to decide whether a directory can hold matches)?
fn m(
    toks: &[Tok],
    ti: usize,
    s: &[char],
    pos: usize,
    prefix: bool,
    memo: &mut std::collections::HashSet<(usize, usize)>,
) -> bool {
    if prefix && pos == s.len() {
        return toks[ti..].iter().all(|t| *t != Tok::Caret) || ti == toks.len();
    }
    if ti == toks.len() {
        return pos == s.len() || s[pos] == '/';
    }
    if memo.contains(&(ti, pos)) {
        return false;
    }
    let ok = match &toks[ti] {
        Tok::Lit(c) => s.get(pos) == Some(c) && m(toks, ti + 1, s, pos + 1, prefix, memo),
        Tok::Any => {
            s.get(pos).is_some_and(|c| *c != '/') && m(toks, ti + 1, s, pos + 1, prefix, memo)
        }
        Tok::Class(neg, items) => {
            s.get(pos)
                .is_some_and(|c| items.iter().any(|(lo, hi)| lo <= c && c <= hi) != *neg)
                && m(toks, ti + 1, s, pos + 1, prefix, memo)
        }
        Tok::Caret => pos == 0 && m(toks, ti + 1, s, pos, prefix, memo),
        Tok::Star => {
            let mut e = pos;
            loop {
                if m(toks, ti + 1, s, e, prefix, memo) {
                    break true;
                }
                if e >= s.len() || s[e] == '/' {
                    break false;
                }
                e += 1;
            }
        }
        Tok::AllStar => true,
        Tok::DirStar => {
            // (.*/)? : nothing, or any text ending with '/'
            m(toks, ti + 1, s, pos, prefix, memo)
                || (pos..s.len()).any(|e| s[e] == '/' && m(toks, ti + 1, s, e + 1, prefix, memo))
                || (prefix && pos < s.len())
        }
    };
    if !ok {
        memo.insert((ti, pos));
    }
    ok
}

impl Compiled {
    fn matches(&self, path: &str) -> bool {
        let s: Vec<char> = path.chars().collect();
        m(&self.toks, 0, &s, 0, false, &mut Default::default())
    }
}

impl Matcher {
    /// Compiles patterns (moby `NewPatternMatcher`).
    pub fn new(patterns: &[Pattern]) -> Result<Self, PatternError> {
        let mut out = Vec::new();
        for p in patterns {
            let text = p.pattern.trim();
            if text.is_empty() {
                if p.exclusion {
                    return Err(PatternError("illegal exclusion pattern: \"!\"".into()));
                }
                continue;
            }
            let text = clean_path(text);
            out.push(Compiled {
                toks: compile(&text)?,
                exclusion: p.exclusion,
                text,
            });
        }
        Ok(Matcher { patterns: out })
    }

    /// Reads and compiles a `.dockerignore` text.
    pub fn from_ignore_file(text: &str) -> Result<Self, PatternError> {
        Self::new(&parse_ignore_file(text))
    }

    /// Is `rel_path` (relative to the context, `/`-separated) excluded?
    /// (moby `MatchesOrParentMatches`.)
    pub fn matches(&self, rel_path: &str) -> bool {
        let file = clean_path(rel_path);
        let file = file.trim_start_matches('/');
        let parent = match file.rfind('/') {
            Some(i) => &file[..i],
            None => ".",
        };
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut hit = p.matches(file);
            if !hit && parent != "." {
                for i in 0..parent_dirs.len() {
                    if p.matches(&parent_dirs[..=i].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Could some path below the directory `rel_dir` be included again by an exception?
    /// When `matches(rel_dir)` is true and this is false, a walker may skip the directory.
    pub fn may_reinclude_children(&self, rel_dir: &str) -> bool {
        let dir = clean_path(rel_dir);
        let dir = dir.trim_start_matches('/');
        let mut s: Vec<char> = dir.chars().collect();
        s.push('/');
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| m(&p.toks, 0, &s, 0, true, &mut Default::default()))
    }

    /// True when there are `!` exceptions at all.
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// The cleaned pattern texts, in order, `!` included.
    pub fn patterns(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| {
                if p.exclusion {
                    format!("!{}", p.text)
                } else {
                    p.text.clone()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mm(pats: &str, path: &str) -> bool {
        Matcher::from_ignore_file(pats).unwrap().matches(path)
    }

    #[test]
    fn basics() {
        assert!(mm("*", "a"));
        assert!(mm("*", "a/b"));
        assert!(!mm("*.go", "a/b.go"));
        assert!(mm("**/*.go", "a/b.go"));
        assert!(mm("**/*.go", "b.go"));
        assert!(mm("a/**", "a/b/c"));
        assert!(mm("a", "a/b/c"));
        assert!(mm("/a/b", "a/b"));
        assert!(mm("./a", "a"));
        assert!(!mm("a\n!a/b", "a/b"));
        assert!(mm("a\n!a/b", "a/c"));
        assert!(mm("[a-c]x", "bx"));
        assert!(!mm("[^a-c]x", "bx"));
        assert!(mm("a?c", "abc"));
        assert!(!mm("a?c", "a/c"));
        assert!(mm("a/**/b", "a/b"));
        assert!(mm("a/**/b", "a/x/y/b"));
        assert!(mm("\\*x", "*x"));
    }

    #[test]
    fn reinclude() {
        let m = Matcher::from_ignore_file("node_modules\n!node_modules/keep\n").unwrap();
        assert!(m.may_reinclude_children("node_modules"));
        assert!(!m.may_reinclude_children("other"));
        let m = Matcher::from_ignore_file("*\n!**/*.rs\n").unwrap();
        assert!(m.may_reinclude_children("deep/dir"));
        assert!(Matcher::from_ignore_file("!\n").is_err());
    }
}
