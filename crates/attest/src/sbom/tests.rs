use super::*;
use hoist_image::{BlobStore, Descriptor, Digest, RawDocument, StoreSource};

enum E<'a> {
    File(&'a str, &'a str),
    Dir(&'a str),
}

fn layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        match e {
            E::File(p, c) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(c.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, p, c.as_bytes()).unwrap();
            }
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn image(layers: &[Vec<u8>]) -> (tempfile::TempDir, StoreSource, Manifest) {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::new(dir.path().join("blobs")).unwrap();
    let descs: Vec<Descriptor> = layers
        .iter()
        .map(|l| {
            let d = store.put_bytes(l).unwrap();
            Descriptor::new(media_type::OCI_LAYER_TAR, d, l.len() as u64)
        })
        .collect();
    let config = b"{}".to_vec();
    let cd = store.put_bytes(&config).unwrap();
    let m = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(media_type::OCI_CONFIG, cd, 2),
        layers: descs,
        subject: None,
        annotations: None,
    };
    let raw = RawDocument::from_value(media_type::OCI_MANIFEST, &m);
    store.put_bytes(&raw.bytes).unwrap();
    let _ = Digest::sha256(b"");
    (dir, StoreSource::new(store, raw), m)
}

const STATUS: &str = "Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u5\n\nPackage: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 7.88.1-10+deb12u5\n";

#[test]
fn packages_of_the_final_filesystem_only() {
    let l1 = layer(&[
        E::Dir("etc/"),
        E::File("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
        E::File("var/lib/dpkg/status", STATUS),
        E::File(
            "app/old/Cargo.lock",
            "[[package]]\nname = \"gone\"\nversion = \"1.0.0\"\n",
        ),
        E::File("srv/x/go.sum", "example.com/m v1.0.0 h1:x=\n"),
        E::File("var/lib/rpm/rpmdb.sqlite", "SQLite format 3"),
    ]);
    let l2 = layer(&[
        E::File("app/.wh.old", ""),
        E::File("srv/x/.wh..wh..opq", ""),
        E::File("srv/x/requirements.txt", "flask==3.0.0\n"),
        E::File(
            "./app/new/package-lock.json",
            r#"{"lockfileVersion":3,"packages":{"node_modules/ms":{"version":"2.1.3"}}}"#,
        ),
    ]);
    let (_d, src, m) = image(&[l1, l2]);
    let s = scan(&src, &m).unwrap();
    let purls: Vec<&str> = s.packages.iter().map(|p| p.purl.as_str()).collect();
    assert!(
        purls.contains(&"pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64&distro=debian-12"),
        "{purls:?}"
    );
    assert!(purls.contains(&"pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12"));
    assert!(purls.contains(&"pkg:pypi/flask@3.0.0"));
    assert!(purls.contains(&"pkg:npm/ms@2.1.3"));
    assert!(
        !purls.iter().any(|p| p.contains("gone")),
        "whiteout: {purls:?}"
    );
    assert!(
        !purls.iter().any(|p| p.contains("golang")),
        "opaque dir: {purls:?}"
    );
    assert_eq!(s.packages.len(), 4);
    assert!(
        s.notes.iter().any(|n| n.contains("RPM database")),
        "{:?}",
        s.notes
    );
    let doc = spdx::document(&s, "app", "1970-01-01T00:00:00Z", "hoist-0.1.0");
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["packages"].as_array().unwrap().len(), 4);
    assert_eq!(doc["relationships"].as_array().unwrap().len(), 4);
    let again = spdx::document(&s, "app", "1970-01-01T00:00:00Z", "hoist-0.1.0");
    assert_eq!(
        serde_json::to_vec(&doc).unwrap(),
        serde_json::to_vec(&again).unwrap()
    );
    assert!(doc["comment"].as_str().unwrap().contains("RPM"));
}

#[test]
fn rpm_sqlite_database_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rpmdb.sqlite");
    let headers = vec![
        rpm::make_header(
            &[
                (rpm::TAG_NAME, "bash"),
                (rpm::TAG_VERSION, "5.2.26"),
                (rpm::TAG_RELEASE, "3.fc40"),
                (rpm::TAG_ARCH, "x86_64"),
            ],
            None,
        ),
        rpm::make_header(
            &[
                (rpm::TAG_NAME, "openssl-libs"),
                (rpm::TAG_VERSION, "3.2.1"),
                (rpm::TAG_RELEASE, "2.fc40"),
                (rpm::TAG_ARCH, "x86_64"),
            ],
            Some(1),
        ),
        vec![0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
    ];
    rpm::make_sqlite(&db, &headers).unwrap();
    let raw = std::fs::read(&db).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for (p, c) in [
        ("etc/os-release", &b"ID=fedora\nVERSION_ID=40\n"[..]),
        ("usr/lib/sysimage/rpm/rpmdb.sqlite", &raw[..]),
        ("var/lib/rpm/Packages", &b"\0\0\0\0"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(c.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, p, c).unwrap();
    }
    let (_d, src, m) = image(&[b.into_inner().unwrap()]);
    let s = scan(&src, &m).unwrap();
    let purls: Vec<&str> = s.packages.iter().map(|p| p.purl.as_str()).collect();
    assert_eq!(
        purls,
        [
            "pkg:rpm/fedora/bash@5.2.26-3.fc40?arch=x86_64&distro=fedora-40",
            "pkg:rpm/fedora/openssl-libs@3.2.1-2.fc40?arch=x86_64&distro=fedora-40&epoch=1",
        ]
    );
    assert_eq!(s.packages[1].version.as_deref(), Some("1:3.2.1-2.fc40"));
    assert!(
        s.notes.iter().any(|n| n.contains("1 malformed header")),
        "{:?}",
        s.notes
    );
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("/var/lib/rpm/Packages found but not read")),
        "{:?}",
        s.notes
    );
}
