//! Small files and values the params point at: `KEY=VALUE` / YAML / JSON maps, image
//! paths, sizes.

use std::collections::BTreeMap;
use std::path::Path;

/// Read a map of build args or labels: `KEY=VALUE` lines (blank lines and `#` comments
/// skipped), a YAML mapping or a JSON object. Errors name the file and line.
pub fn read_kv_file(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_kv(&text).map_err(|e| format!("{}{e}", path.display()))
}

/// Parse the content of a [`read_kv_file`] file; errors start with `:LINE: ` when a line
/// is at fault.
pub fn parse_kv(text: &str) -> Result<BTreeMap<String, String>, String> {
    let content: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    let first = content.first().map(|(_, l)| l.trim_start()).unwrap_or("");
    let looks_kv = |l: &str| {
        l.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && !k.contains(':') && !k.chars().any(char::is_whitespace)
        })
    };
    if first.starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!(":{}: invalid JSON: {e}", e.line()))?;
        return scalar_map(v, "a JSON object of strings");
    }
    if !content.is_empty() && content.iter().all(|(_, l)| looks_kv(l)) {
        let mut out = BTreeMap::new();
        for (_, l) in content {
            let (k, v) = l.split_once('=').expect("checked");
            out.insert(k.to_string(), v.to_string());
        }
        return Ok(out);
    }
    if content.is_empty() {
        return Ok(BTreeMap::new());
    }
    // Either YAML or a KEY=VALUE file with a bad line: say which line.
    let yaml_like = content.iter().any(|(_, l)| !looks_kv(l) && l.contains(':'));
    if !yaml_like {
        let (n, l) = content.iter().find(|(_, l)| !looks_kv(l)).expect("some");
        return Err(format!(":{n}: expected KEY=VALUE, got {l:?}"));
    }
    let v: serde_json::Value = serde_norway::from_str(text).map_err(|e| match e.location() {
        Some(loc) => format!(":{}: invalid YAML: {e}", loc.line()),
        None => format!(": invalid YAML: {e}"),
    })?;
    scalar_map(v, "a YAML mapping of strings")
}

fn scalar_map(v: serde_json::Value, what: &str) -> Result<BTreeMap<String, String>, String> {
    let serde_json::Value::Object(m) = v else {
        return Err(format!(": expected {what}"));
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let s = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => String::new(),
            _ => return Err(format!(": {k}: expected a string, number or boolean")),
        };
        out.insert(k, s);
    }
    Ok(out)
}

/// The hoist image reference for an image on disk: a docker-archive (`docker save`,
/// registry-image's `image.tar`), an OCI archive, an OCI layout directory, or a
/// directory holding one of those (a registry-image `get` output: `image.tar` or `oci/`).
pub fn image_reference(path: &Path) -> Result<String, String> {
    let abs = std::fs::canonicalize(path)
        .map_err(|e| format!("{}: {e} (is the input missing?)", path.display()))?;
    if abs.is_dir() {
        if abs.join("oci-layout").is_file() {
            return Ok(format!("oci:{}", abs.display()));
        }
        if abs.join("oci/oci-layout").is_file() {
            return Ok(format!("oci:{}", abs.join("oci").display()));
        }
        if abs.join("image.tar").is_file() {
            return image_reference(&abs.join("image.tar"));
        }
        return Err(format!(
            "{}: a directory without an OCI layout (oci-layout) or image.tar",
            abs.display()
        ));
    }
    let f = std::fs::File::open(&abs).map_err(|e| format!("{}: {e}", abs.display()))?;
    let mut ar = tar::Archive::new(f);
    let mut oci = false;
    let entries = ar
        .entries_with_seek()
        .map_err(|e| format!("{}: not a tar archive: {e}", abs.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("{}: not a tar archive: {e}", abs.display()))?;
        let p = e.path().map_err(|e| format!("{}: {e}", abs.display()))?;
        let p = p.to_string_lossy();
        let p = p.trim_start_matches("./");
        if p == "manifest.json" {
            return Ok(format!("docker-archive:{}", abs.display()));
        }
        if p == "oci-layout" {
            oci = true;
        }
    }
    if oci {
        return Ok(format!("oci-archive:{}", abs.display()));
    }
    Err(format!(
        "{}: neither a docker-archive (manifest.json) nor an OCI archive (oci-layout)",
        abs.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_formats() {
        let m = parse_kv("A=1\n\n# c\nB=x=y\n").unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "x=y");
        let m = parse_kv("some_arg: some_value\nother: 2\nflag: true\n").unwrap();
        assert_eq!(m["some_arg"], "some_value");
        assert_eq!(m["other"], "2");
        assert_eq!(m["flag"], "true");
        let m = parse_kv("{\"a\": \"b\", \"n\": 3}\n").unwrap();
        assert_eq!(m["n"], "3");
        let m = parse_kv("url: \"http://x:1/a=b\"\n").unwrap();
        assert_eq!(m["url"], "http://x:1/a=b");
        assert!(parse_kv("A=1\nnot a pair\n")
            .unwrap_err()
            .starts_with(":2:"));
        assert!(parse_kv("a: [1, 2]\n").is_err());
        assert!(parse_kv("").unwrap().is_empty());
    }
}
