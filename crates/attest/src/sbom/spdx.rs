//! The SPDX 2.3 JSON document of a [`Scan`].

use serde_json::{json, Value};

use super::{Package, Scan};

/// The document: one package per [`Package`], each `DESCRIBES`d by the document, with
/// its version and purl. `name` names the image; `created` is RFC 3339 (the build's
/// epoch, so equal scans give equal bytes); `tool` is `hoist-VERSION`.
pub fn document(scan: &Scan, name: &str, created: &str, tool: &str) -> Value {
    let packages: Vec<Value> = scan
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| package(i, p))
        .collect();
    let relationships: Vec<Value> = (0..scan.packages.len())
        .map(|i| {
            json!({
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": spdx_id(i, &scan.packages[i]),
            })
        })
        .collect();
    let content = hoist_image::Digest::sha256(&serde_json::to_vec(&packages).unwrap_or_default());
    let mut creation = json!({
        "created": created,
        "creators": [format!("Tool: {tool}")],
    });
    if !scan.notes.is_empty() {
        creation["comment"] = json!(scan.notes.join("\n"));
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("sbom-{name}"),
        "documentNamespace": format!("https://hoist.invalid/spdx/{}", content.hex()),
        "creationInfo": creation,
        "packages": packages,
        "relationships": relationships,
    });
    if !scan.notes.is_empty() {
        doc["comment"] = json!(scan.notes.join("\n"));
    }
    doc
}

fn spdx_id(i: usize, p: &Package) -> String {
    let clean: String = p
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-Package-{:?}-{clean}-{i}", p.source)
}

fn license(l: Option<&str>) -> String {
    match l {
        Some(l)
            if !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || " .+-()".contains(c)) =>
        {
            l.to_string()
        }
        _ => "NOASSERTION".into(),
    }
}

fn package(i: usize, p: &Package) -> Value {
    let mut v = json!({
        "SPDXID": spdx_id(i, p),
        "name": p.name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": license(p.license.as_deref()),
        "copyrightText": "NOASSERTION",
        "sourceInfo": format!("acquired package info from {}: {}", p.source.label(), p.location),
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": p.purl,
        }],
    });
    if let Some(ver) = &p.version {
        v["versionInfo"] = json!(ver);
    }
    if let Some(s) = &p.supplier {
        v["supplier"] = json!(format!(
            "Organization: {}",
            s.replace('<', "(").replace('>', ")")
        ));
    }
    v
}
