//! Package URLs (purl): `pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS`.

/// Percent-encode everything but purl's unreserved characters (`A-Za-z0-9.-_~`).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Encode a name that may have `/`-separated segments (Go modules, npm scopes).
pub fn encode_path(s: &str) -> String {
    s.split('/').map(encode).collect::<Vec<_>>().join("/")
}

/// A purl of `kind` for `name` (already split into namespace segments by the caller)
/// at `version`, with `qualifiers` in the order given (purl wants them sorted by key).
pub fn purl(kind: &str, name: &str, version: Option<&str>, qualifiers: &[(&str, &str)]) -> String {
    let mut s = format!("pkg:{kind}/{}", encode_path(name));
    if let Some(v) = version.filter(|v| !v.is_empty()) {
        s.push('@');
        s.push_str(&encode(v));
    }
    let mut q: Vec<&(&str, &str)> = qualifiers.iter().filter(|(_, v)| !v.is_empty()).collect();
    q.sort();
    for (i, (k, v)) in q.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        s.push_str(&encode(v));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_the_spec_says() {
        assert_eq!(
            purl(
                "deb",
                "debian/libc6",
                Some("2.36-9+deb12u4"),
                &[("distro", "debian-12"), ("arch", "amd64")]
            ),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            purl("npm", "@types/node", Some("1.0.0"), &[]),
            "pkg:npm/%40types/node@1.0.0"
        );
        assert_eq!(purl("cargo", "serde", None, &[]), "pkg:cargo/serde");
        assert_eq!(encode("1:2.0"), "1%3A2.0");
    }
}
