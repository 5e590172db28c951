//! Debian and Ubuntu: `/var/lib/dpkg/status` (and distroless `status.d/*` files).

use super::{Origin, Package};

/// The installed packages of a dpkg status file (paragraphs whose `Status` is
/// `install ok installed`, or that have no Status, as in `status.d`).
pub fn parse(text: &str, location: &str, distro: Option<&(String, String)>) -> Vec<Package> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut arch = None;
        let mut status = None;
        let mut source = None;
        let mut maintainer = None;
        for line in para.lines() {
            if line.starts_with(' ') || line.starts_with('\t') {
                continue; // continuation of a multi-line field
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k {
                "Package" => name = Some(v.to_string()),
                "Version" => version = Some(v.to_string()),
                "Architecture" => arch = Some(v.to_string()),
                "Status" => status = Some(v.to_string()),
                "Source" => source = Some(v.split_whitespace().next().unwrap_or(v).to_string()),
                "Maintainer" => maintainer = Some(v.to_string()),
                _ => {}
            }
        }
        let (Some(name), Some(version)) = (name, version) else {
            continue;
        };
        if let Some(s) = &status {
            if !s.ends_with(" installed") || s.contains("not-installed") {
                continue;
            }
        }
        let (id, version_id) = distro
            .cloned()
            .unwrap_or_else(|| ("debian".to_string(), String::new()));
        let ns = if id == "ubuntu" { "ubuntu" } else { "debian" };
        let distro_q = if version_id.is_empty() {
            String::new()
        } else {
            format!("{id}-{version_id}")
        };
        let arch_s = arch.clone().unwrap_or_default();
        let mut q: Vec<(&str, &str)> =
            vec![("arch", arch_s.as_str()), ("distro", distro_q.as_str())];
        if let Some(s) = source.as_deref().filter(|s| *s != name) {
            q.push(("upstream", s));
        }
        let purl = super::purl::purl("deb", &format!("{ns}/{name}"), Some(&version), &q);
        out.push(Package {
            name,
            version: Some(version),
            purl,
            source: Origin::Dpkg,
            location: location.to_string(),
            license: None,
            supplier: maintainer,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_packages_only() {
        let text = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n multi-line\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n";
        let d = ("debian".to_string(), "12".to_string());
        let p = parse(text, "/var/lib/dpkg/status", Some(&d));
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "libc6");
        assert_eq!(p[0].version.as_deref(), Some("2.36-9+deb12u4"));
        assert_eq!(
            p[0].purl,
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc"
        );
        assert_eq!(p[1].name, "bash");
    }
}
