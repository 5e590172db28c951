//! COPY/ADD source wildcards with the semantics of BuildKit's file backend (fsutil
//! `ResolveWildcards`, Go's `filepath.Match`).
//!
//! - A source has wildcards when a component holds an unescaped `*`, `?` or `[`; a
//!   backslash escapes the next character. Without wildcards the path is used as it is.
//! - The path is split at its first wildcard component: the part before is resolved in
//!   the tree (symlinks followed), the rest is matched against the paths below it,
//!   component by component (`*` and `?` never match `/`; `**` is just two `*`).
//! - Matching never descends into symlinks and stops at a matched directory; a
//!   component that matches a file does not let the walk go further (a pattern
//!   `**/sub/*.txt` walks into directories only).

use crate::error::Result;
use crate::fsview;
use crate::tree::SourceTree;

/// Whether a path contains glob metacharacters that are not escaped by `\`.
pub fn has_wildcard(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Match one path component against a Go `filepath.Match` pattern component.
/// A malformed pattern matches nothing (Go returns `ErrBadPattern`).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, chars consumed incl. ']').
        let mut i = 0;
        let negate = p.first() == Some(&'^');
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        loop {
            let ch = *p.get(i)?;
            if ch == ']' && !first {
                i += 1;
                break;
            }
            first = false;
            let lo = if ch == '\\' {
                i += 1;
                *p.get(i)?
            } else {
                ch
            };
            i += 1;
            let mut hi = lo;
            if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
                i += 1;
                hi = if p[i] == '\\' {
                    i += 1;
                    *p.get(i)?
                } else {
                    p[i]
                };
                i += 1;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
        }
        Some((matched != negate, i))
    }
    fn rec(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => {
                let rest = &p[1..];
                (0..=n.len())
                    .take_while(|&k| k == 0 || n[k - 1] != '/')
                    .any(|k| rec(rest, &n[k..]))
            }
            Some('?') => n.first().is_some_and(|&c| c != '/') && rec(&p[1..], &n[1..]),
            Some('[') => match n.first() {
                Some(&c) if c != '/' => match class(&p[1..], c) {
                    Some((true, used)) => rec(&p[1 + used..], &n[1..]),
                    _ => false,
                },
                _ => false,
            },
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && rec(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && rec(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    rec(&p, &n)
}

/// Expand a cleaned, relative source path: `None` when it has no wildcards (use it as
/// it is), else the matching paths relative to the tree root, in walk order.
pub fn expand(tree: &dyn SourceTree, rel: &str) -> Result<Option<Vec<String>>> {
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let Some(first) = comps.iter().position(|c| has_wildcard(c)) else {
        return Ok(None);
    };
    let base = tree.resolve(&comps[..first].join("/"))?;
    let pattern = &comps[first..];
    let mut out = Vec::new();
    if tree.stat(&base)?.is_some_and(|m| m.is_dir()) {
        walk(tree, &base, pattern, 0, &mut out)?;
    }
    Ok(Some(out))
}

fn walk(
    tree: &dyn SourceTree,
    dir: &str,
    pattern: &[&str],
    depth: usize,
    out: &mut Vec<String>,
) -> Result<()> {
    for name in tree.list(dir)? {
        if !glob_match(pattern[depth], &name) {
            continue;
        }
        let p = fsview::join(dir, &name);
        if depth + 1 == pattern.len() {
            out.push(p);
        } else if tree.stat(&p)?.is_some_and(|m| m.is_dir()) {
            walk(tree, &p, pattern, depth + 1, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_filepath_match() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(glob_match("*", ".hidden"));
        assert!(!glob_match("*.txt", "a.txt.bak"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[^a-c]x", "bx"));
        assert!(glob_match("[^a-c]x", "dx"));
        assert!(glob_match("arr\\[0\\].txt", "arr[0].txt"));
        assert!(glob_match("[[]xyz]", "[xyz]"));
        assert!(!glob_match("[", "["));
        assert!(!glob_match("*", "a/b"));
        assert!(!glob_match("a?b", "a/b"));
    }

    #[test]
    fn escaped_metacharacters_are_no_wildcards() {
        assert!(has_wildcard("a/*.txt"));
        assert!(has_wildcard("[[]x]"));
        assert!(!has_wildcard("n\\?pe"));
        assert!(!has_wildcard("st\\*uv/file"));
        assert!(!has_wildcard("plain/path"));
    }
}
