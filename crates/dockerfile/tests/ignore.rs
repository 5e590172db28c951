//! `.dockerignore` matching, case by case, as `moby/patternmatcher` decides it.

use hoist_dockerfile::ignore::{parse_ignore_file, Matcher, Pattern};

fn single(pattern: &str, path: &str) -> bool {
    Matcher::new(&[Pattern {
        pattern: pattern.to_string(),
        exclusion: false,
    }])
    .unwrap()
    .matches(path)
}

#[test]
fn single_patterns() {
    let cases: &[(&str, &str, bool)] = &[
        ("**", "file", true),
        ("**", "file/", true),
        ("**/", "file", true),
        ("**/", "dir/file", true),
        ("**", "dir/file/", true),
        ("**/file", "file", true),
        ("**/file", "dir/file", true),
        ("**/file", "dir/dir/file", true),
        ("**/file*", "dir/dir/file.txt", true),
        ("**/file*txt", "dir/dir/file.txt", true),
        ("**/file*.txt", "dir/dir/file.txt", true),
        ("**/**/*.txt", "dir/dir/file.txt", true),
        ("**/**/*.txt2", "dir/dir/file.txt", false),
        ("**/*.txt", "file.txt", true),
        ("**/**/*.txt", "file.txt", true),
        ("a**/*.txt", "a/file.txt", true),
        ("a**/*.txt", "a/dir/file.txt", true),
        ("a**/*.txt", "a/dir/dir/file.txt", true),
        ("a/*.txt", "a/dir/file.txt", false),
        ("a/*.txt", "a/file.txt", true),
        ("a/*.txt**", "a/file.txt", true),
        ("a[b-d]e", "ae", false),
        ("a[b-d]e", "ace", true),
        ("a[b-d]e", "aae", false),
        ("a[^b-d]e", "aze", true),
        (".*", ".foo", true),
        (".*", "foo", false),
        ("abc.def", "abcdef", false),
        ("abc.def", "abc.def", true),
        ("abc.def", "abcZdef", false),
        ("abc?def", "abcZdef", true),
        ("abc?def", "abcdef", false),
        ("**/foo/bar", "foo/bar", true),
        ("**/foo/bar", "dir/foo/bar", true),
        ("**/foo/bar", "dir/dir2/foo/bar", true),
        ("abc/**", "abc", false),
        ("abc/**", "abc/def", true),
        ("abc/**", "abc/def/ghi", true),
        ("**/.foo", ".foo", true),
        ("**/.foo", "bar.foo", false),
        ("a(b)c/def", "a(b)c/def", true),
        ("a(b)c/def", "a(b)c/xyz", false),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
        (
            "dist/*.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        ("docs", "docs/a/b.md", true),
        ("docs/", "docs/a", true),
        ("*", "a/b", true),
        ("*/b", "a/b/c", true),
        ("*.go", "a/b.go", false),
        ("a\\*b", "a*b", true),
        ("a\\*b", "axb", false),
    ];
    let mut bad = Vec::new();
    for (p, f, want) in cases {
        if single(p, f) != *want {
            bad.push(format!("{p:?} vs {f:?}: expected {want}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn files_with_exceptions() {
    let text = "# comment\n\n  *.md  \n!README.md\n/build\n./tmp/\nnode_modules\n!node_modules/keep/**\n#!not-an-exception\n";
    let pats = parse_ignore_file(text);
    assert_eq!(
        pats.iter()
            .map(|p| format!("{}{}", if p.exclusion { "!" } else { "" }, p.pattern))
            .collect::<Vec<_>>(),
        [
            "*.md",
            "!README.md",
            "build",
            "tmp",
            "node_modules",
            "!node_modules/keep/**"
        ]
    );
    let m = Matcher::new(&pats).unwrap();
    assert!(m.matches("CHANGES.md"));
    assert!(!m.matches("README.md"));
    assert!(
        !m.matches("docs/guide.md"),
        "`*` does not cross directories"
    );
    assert!(m.matches("build/bin/app"));
    assert!(m.matches("tmp/x"));
    assert!(m.matches("node_modules/left-pad/index.js"));
    assert!(!m.matches("node_modules/keep/a.js"));
    assert!(m.may_reinclude_children("node_modules"));
    assert!(!m.may_reinclude_children("build"));
    assert!(m.has_exclusions());
    // later patterns win
    let m = Matcher::from_ignore_file("!a\na\n").unwrap();
    assert!(m.matches("a"));
    // an exception for a file inside an excluded directory re-includes it
    let m = Matcher::from_ignore_file("dir\n!dir/file\n").unwrap();
    assert!(!m.matches("dir/file"));
    assert!(m.matches("dir/other"));
}
