//! Alpine: `/lib/apk/db/installed`.

use super::{Origin, Package};

/// The packages of an apk database (records separated by blank lines; `P:` name,
/// `V:` version, `A:` arch, `L:` license, `o:` origin, `m:` maintainer).
pub fn parse(text: &str, location: &str, distro: Option<&(String, String)>) -> Vec<Package> {
    let mut out = Vec::new();
    for rec in text.split("\n\n") {
        let mut f = std::collections::BTreeMap::new();
        for line in rec.lines() {
            if let Some((k, v)) = line.split_once(':') {
                if k.len() == 1 {
                    f.entry(k.to_string()).or_insert_with(|| v.to_string());
                }
            }
        }
        let (Some(name), Some(version)) = (f.get("P"), f.get("V")) else {
            continue;
        };
        let distro_q = distro
            .filter(|(_, v)| !v.is_empty())
            .map(|(id, v)| format!("{id}-{v}"))
            .unwrap_or_default();
        let arch = f.get("A").cloned().unwrap_or_default();
        let origin = f
            .get("o")
            .filter(|o| *o != name)
            .cloned()
            .unwrap_or_default();
        let purl = super::purl::purl(
            "apk",
            &format!("alpine/{name}"),
            Some(version),
            &[
                ("arch", &arch),
                ("distro", &distro_q),
                ("upstream", &origin),
            ],
        );
        out.push(Package {
            name: name.clone(),
            version: Some(version.clone()),
            purl,
            source: Origin::Apk,
            location: location.to_string(),
            license: f.get("L").cloned(),
            supplier: f.get("m").cloned(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records() {
        let text = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\nP:busybox\nV:1.36.1-r5\nA:x86_64\nL:GPL-2.0-only\n";
        let d = ("alpine".to_string(), "3.19.1".to_string());
        let p = parse(text, "/lib/apk/db/installed", Some(&d));
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[0].purl,
            "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1"
        );
        assert_eq!(p[1].license.as_deref(), Some("GPL-2.0-only"));
    }
}
