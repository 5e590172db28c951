//! Language lockfiles found anywhere in the image: `Cargo.lock`, `package-lock.json`,
//! `requirements*.txt`, `poetry.lock`, `go.sum`, `Gemfile.lock`.

use super::purl::purl;
use super::{Origin, Package};

/// Whether a file name is a lockfile this module reads.
pub fn is_lockfile(name: &str) -> bool {
    matches!(
        name,
        "Cargo.lock" | "package-lock.json" | "poetry.lock" | "go.sum" | "Gemfile.lock"
    ) || (name.starts_with("requirements") && name.ends_with(".txt"))
}

/// The packages of lockfile `name` (its bytes `text`) at `location`.
pub fn parse(name: &str, text: &str, location: &str) -> Vec<Package> {
    let pkgs: Vec<(String, Option<String>, String, Origin)> = match name {
        "Cargo.lock" => toml_packages(text)
            .into_iter()
            .map(|(n, v)| {
                let p = purl("cargo", &n, v.as_deref(), &[]);
                (n, v, p, Origin::Cargo)
            })
            .collect(),
        "poetry.lock" => toml_packages(text)
            .into_iter()
            .map(|(n, v)| {
                let p = purl("pypi", &pep503(&n), v.as_deref(), &[]);
                (n, v, p, Origin::Python)
            })
            .collect(),
        "package-lock.json" => npm(text),
        "go.sum" => go_sum(text),
        "Gemfile.lock" => gemfile(text),
        _ => requirements(text),
    };
    pkgs.into_iter()
        .map(|(name, version, purl, source)| Package {
            name,
            version,
            purl,
            source,
            location: location.to_string(),
            license: None,
            supplier: None,
        })
        .collect()
}

/// `[[package]]` tables' `name` and `version` (Cargo.lock, poetry.lock), without a TOML
/// library: both files are machine-written with one `key = "value"` per line.
fn toml_packages(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut cur: Option<(Option<String>, Option<String>)> = None;
    let flush = |cur: &mut Option<(Option<String>, Option<String>)>, out: &mut Vec<_>| {
        if let Some((Some(n), v)) = cur.take() {
            out.push((n, v));
        }
    };
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            flush(&mut cur, &mut out);
            if t == "[[package]]" {
                cur = Some((None, None));
            }
            continue;
        }
        let Some(c) = cur.as_mut() else { continue };
        if let Some((k, v)) = t.split_once('=') {
            let v = v.trim().trim_matches('"').to_string();
            match k.trim() {
                "name" if c.0.is_none() => c.0 = Some(v),
                "version" if c.1.is_none() => c.1 = Some(v),
                _ => {}
            }
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// PEP 503 normalised name: lowercase, runs of `-_.` as one `-`.
fn pep503(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn requirements(text: &str) -> Vec<(String, Option<String>, String, Origin)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let line = line.split(';').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('-') || line.contains("://") {
            continue;
        }
        let line = line.split_whitespace().next().unwrap_or("");
        let (name, version) = match line.split_once("==") {
            Some((n, v)) => (n, Some(v.trim_start_matches('=').to_string())),
            None => (
                line.split(['<', '>', '=', '!', '~', '['])
                    .next()
                    .unwrap_or(line),
                None,
            ),
        };
        let name = name.split('[').next().unwrap_or(name).trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            continue;
        }
        let p = purl("pypi", &pep503(name), version.as_deref(), &[]);
        out.push((name.to_string(), version, p, Origin::Python));
    }
    out
}

fn npm(text: &str) -> Vec<(String, Option<String>, String, Origin)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut add = |name: &str, version: Option<&str>| {
        if name.is_empty() {
            return;
        }
        let p = purl("npm", name, version, &[]);
        out.push((
            name.to_string(),
            version.map(str::to_string),
            p,
            Origin::Npm,
        ));
    };
    if let Some(pkgs) = v.get("packages").and_then(|p| p.as_object()) {
        // lockfileVersion 2 and 3: "node_modules/a/node_modules/@s/b" → "@s/b".
        for (path, info) in pkgs {
            if path.is_empty() || info.get("link").and_then(|l| l.as_bool()) == Some(true) {
                continue;
            }
            let name = info
                .get("name")
                .and_then(|n| n.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| {
                    path.rsplit_once("node_modules/")
                        .map(|(_, n)| n.to_string())
                        .unwrap_or_else(|| path.clone())
                });
            add(&name, info.get("version").and_then(|v| v.as_str()));
        }
    } else if let Some(deps) = v.get("dependencies").and_then(|d| d.as_object()) {
        // lockfileVersion 1: nested "dependencies".
        let mut stack: Vec<&serde_json::Map<String, serde_json::Value>> = vec![deps];
        while let Some(d) = stack.pop() {
            for (name, info) in d {
                add(name, info.get("version").and_then(|v| v.as_str()));
                if let Some(inner) = info.get("dependencies").and_then(|d| d.as_object()) {
                    stack.push(inner);
                }
            }
        }
    }
    out
}

fn go_sum(text: &str) -> Vec<(String, Option<String>, String, Origin)> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(module), Some(version)) = (parts.next(), parts.next()) else {
            continue;
        };
        let version = version.trim_end_matches("/go.mod");
        if !seen.insert((module.to_string(), version.to_string())) {
            continue;
        }
        let p = purl("golang", module, Some(version), &[]);
        out.push((module.to_string(), Some(version.to_string()), p, Origin::Go));
    }
    out
}

fn gemfile(text: &str) -> Vec<(String, Option<String>, String, Origin)> {
    let mut out = Vec::new();
    let mut in_specs = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_specs = false;
            continue;
        }
        if line.trim() == "specs:" {
            in_specs = true;
            continue;
        }
        // Exactly four spaces: a gem; six: one of its dependencies.
        if !in_specs || !line.starts_with("    ") || line.starts_with("     ") {
            continue;
        }
        let t = line.trim();
        let Some((name, rest)) = t.split_once(" (") else {
            continue;
        };
        let version = rest.trim_end_matches(')');
        let p = purl("gem", name, Some(version), &[]);
        out.push((name.to_string(), Some(version.to_string()), p, Origin::Ruby));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(pkgs: &[Package]) -> Vec<String> {
        pkgs.iter().map(|p| p.purl.clone()).collect()
    }

    #[test]
    fn every_lockfile_kind() {
        let cargo = "version = 3\n\n[[package]]\nname = \"serde\"\nversion = \"1.0.200\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\ndependencies = [\n \"serde_derive\",\n]\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n";
        assert_eq!(
            names(&parse("Cargo.lock", cargo, "/app/Cargo.lock")),
            ["pkg:cargo/serde@1.0.200", "pkg:cargo/app@0.1.0"]
        );
        let npm3 = r#"{"lockfileVersion":3,"packages":{"":{"name":"app","version":"1.0.0"},"node_modules/left-pad":{"version":"1.3.0"},"node_modules/@types/node":{"version":"20.1.0"},"node_modules/a/node_modules/b":{"version":"2.0.0"}}}"#;
        let mut n = names(&parse("package-lock.json", npm3, "/app/package-lock.json"));
        n.sort();
        assert_eq!(
            n,
            [
                "pkg:npm/%40types/node@20.1.0",
                "pkg:npm/b@2.0.0",
                "pkg:npm/left-pad@1.3.0"
            ]
        );
        let npm1 = r#"{"lockfileVersion":1,"dependencies":{"x":{"version":"1.0.0","dependencies":{"y":{"version":"2.0.0"}}}}}"#;
        assert_eq!(parse("package-lock.json", npm1, "/p").len(), 2);
        let req = "# comment\nFlask==3.0.0\nrequests>=2\n-r other.txt\nzope.interface==6.1 ; python_version > '3'\n";
        assert_eq!(
            names(&parse("requirements-dev.txt", req, "/r")),
            [
                "pkg:pypi/flask@3.0.0",
                "pkg:pypi/requests",
                "pkg:pypi/zope-interface@6.1"
            ]
        );
        let poetry = "[[package]]\nname = \"Django\"\nversion = \"5.0\"\n\n[package.dependencies]\nasgiref = \">=3.7\"\n\n[metadata]\nlock-version = \"2.0\"\n";
        assert_eq!(
            names(&parse("poetry.lock", poetry, "/p")),
            ["pkg:pypi/django@5.0"]
        );
        let gosum =
            "github.com/pkg/errors v0.9.1 h1:abc=\ngithub.com/pkg/errors v0.9.1/go.mod h1:def=\n";
        assert_eq!(
            names(&parse("go.sum", gosum, "/g")),
            ["pkg:golang/github.com/pkg/errors@v0.9.1"]
        );
        let gem = "GEM\n  remote: https://rubygems.org/\n  specs:\n    rack (3.0.8)\n    rails (7.1.2)\n      rack (>= 2.2)\n\nPLATFORMS\n  ruby\n";
        assert_eq!(
            names(&parse("Gemfile.lock", gem, "/g")),
            ["pkg:gem/rack@3.0.8", "pkg:gem/rails@7.1.2"]
        );
        assert!(is_lockfile("requirements.txt") && is_lockfile("requirements-prod.txt"));
        assert!(!is_lockfile("Cargo.toml"));
    }
}
