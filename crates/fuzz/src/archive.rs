//! Image archives: a docker-archive (`docker save`), an OCI archive, and an OCI
//! layout directory, each read as hoist reads a base image given on the command line.
//!
//! The input is a tar (checksums repaired, [`crate::tarfix`]). Once opened, the
//! source goes through what a build or `hoist copy` does with it: resolve for
//! `linux/amd64`, [`validate`], unpack into a [`Jail`] (a failure leaves no output;
//! nothing outside the jail's root changes) and copy into an OCI archive, which must
//! open again with the same root document: sinks never rewrite an image.

use std::fs;
use std::path::Path;

use hoist_image::archive::normalize_member_name;
use hoist_image::layer::WhiteoutMode;
use hoist_image::{
    resolve, unpack_rootfs, validate, write_oci_archive, DockerArchiveSource, OciArchiveSource,
    OciLayoutSource, Platform, Source,
};

use crate::jail::Jail;
use crate::tarfix::fix_checksums;

/// docker-archive reading (see the module docs).
pub fn docker_archive(data: &[u8]) {
    let jail = Jail::new();
    let file = jail.path("input.tar");
    fs::write(&file, fix_checksums(data)).expect("write the input");
    for reference in [None, Some("@0")] {
        if let Ok(src) = DockerArchiveSource::open(&file, reference) {
            exercise(&src);
        }
    }
    jail.check(&["input.tar"], "docker-archive");
}

/// OCI archive and OCI layout reading (see the module docs): the tar is read as an
/// archive, then its regular files are written out as a layout directory and read again.
pub fn oci(data: &[u8]) {
    let jail = Jail::new();
    let file = jail.path("input.tar");
    let tar = fix_checksums(data);
    fs::write(&file, &tar).expect("write the input");
    for reference in [None, Some("latest")] {
        if let Ok(src) = OciArchiveSource::open(&file, reference) {
            exercise(&src);
        }
    }
    let layout = jail.root();
    extract_plain(&tar, &layout);
    for reference in [None, Some("latest")] {
        if let Ok(src) = OciLayoutSource::open(&layout, reference) {
            exercise(&src);
        }
    }
    jail.check(&["input.tar"], "OCI archive");
}

/// Write the regular files and directories of `tar` under `dir` (names normalised as
/// the archive index does; links, devices and names it refuses are skipped).
fn extract_plain(tar: &[u8], dir: &Path) {
    let mut a = tar::Archive::new(tar);
    let Ok(entries) = a.entries() else { return };
    for e in entries {
        let Ok(mut e) = e else { return };
        let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let Ok(name) = normalize_member_name(&raw) else {
            continue;
        };
        let p = dir.join(&name);
        match e.header().entry_type() {
            tar::EntryType::Directory => {
                let _ = fs::create_dir_all(&p);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = p.parent() {
                    let _ = fs::create_dir_all(parent);
                }
                let mut content = Vec::new();
                if std::io::Read::read_to_end(&mut e, &mut content).is_ok() {
                    let _ = fs::write(&p, content);
                }
            }
            _ => {}
        }
    }
}

/// What a build or a copy does with a source.
fn exercise(src: &dyn Source) {
    let platform = Platform::parse("linux/amd64").expect("platform");
    let Ok(root) = src.root() else { return };
    let _ = resolve(src, &platform);
    let _ = validate(src);

    let jail = Jail::new();
    let out = jail.path("out");
    let opts = crate::layer::options(WhiteoutMode::Oci, false);
    let unpacked = unpack_rootfs(src, &platform, &out, &opts);
    jail.check(
        if unpacked.is_ok() { &["out"] } else { &[] },
        &format!("unpacking {}", src.name()),
    );

    let copy = jail.path("copy.tar");
    let copied = write_oci_archive(src, &copy, Some("copy"));
    let outputs: &[&str] = match (&unpacked, &copied) {
        (Ok(_), Ok(_)) => &["out", "copy.tar"],
        (Ok(_), Err(_)) => &["out"],
        (Err(_), Ok(_)) => &["copy.tar"],
        (Err(_), Err(_)) => &[],
    };
    jail.check(outputs, &format!("copying {}", src.name()));
    if copied.is_ok() {
        let again = OciArchiveSource::open(&copy, Some("copy"))
            .unwrap_or_else(|e| panic!("the copy of {} does not open: {e}", src.name()));
        assert_eq!(
            again.root().expect("root of the copy").bytes,
            root.bytes,
            "the copy of {} has another root document",
            src.name()
        );
    }
}
