//! The SBOM: packages found in the final image's filesystem, as an SPDX 2.3 document.
//!
//! [`scan`] reads the image's layers in order (whiteouts and opaque directories
//! applied, so a package database or lockfile removed by a later layer is not
//! reported) and keeps only the files it reads:
//!
//! | file                                         | packages                             |
//! |----------------------------------------------|--------------------------------------|
//! | `/var/lib/dpkg/status`, `status.d/*`         | Debian/Ubuntu (`pkg:deb/debian/…`)   |
//! | `/lib/apk/db/installed`                      | Alpine (`pkg:apk/alpine/…`)          |
//! | `Cargo.lock`                                 | Rust crates (`pkg:cargo/…`)          |
//! | `package-lock.json`                          | npm (`pkg:npm/…`)                    |
//! | `requirements*.txt`, `poetry.lock`           | Python (`pkg:pypi/…`)                |
//! | `go.sum`                                     | Go modules (`pkg:golang/…`)          |
//! | `Gemfile.lock`                               | Ruby gems (`pkg:gem/…`)              |
//!
//! | `/var/lib/rpm/rpmdb.sqlite` (and `/usr/lib/sysimage/rpm/`) | RPM (`pkg:rpm/fedora/…`) |
//!
//! `/etc/os-release` gives the `distro=` qualifier. Older RPM databases (Berkeley DB
//! `Packages`, NDB `Packages.db`) are not read: when one is present the document says
//! so in its `comment` (and [`Scan::notes`]), and none of its packages is listed,
//! rather than an SBOM that looks complete.

pub mod apk;
pub mod dpkg;
pub mod lockfiles;
pub mod purl;
pub mod rpm;
pub mod spdx;

use std::collections::BTreeMap;
use std::io::Read;

use hoist_image::layer::{LayerName, LayerStream, StreamCheck};
use hoist_image::{media_type, Manifest, Source};

use crate::error::Result;

/// The package database or lockfile kind a package came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// dpkg's status database.
    Dpkg,
    /// apk's installed database.
    Apk,
    /// RPM's SQLite database.
    Rpm,
    /// Cargo.lock.
    Cargo,
    /// package-lock.json.
    Npm,
    /// requirements*.txt or poetry.lock.
    Python,
    /// go.sum.
    Go,
    /// Gemfile.lock.
    Ruby,
}

impl Origin {
    /// How the SPDX `sourceInfo` names it.
    pub fn label(self) -> &'static str {
        match self {
            Origin::Dpkg => "DPKG DB",
            Origin::Apk => "APK DB",
            Origin::Rpm => "RPM DB",
            Origin::Cargo => "Cargo.lock",
            Origin::Npm => "package-lock.json",
            Origin::Python => "Python requirements/lockfile",
            Origin::Go => "go.sum",
            Origin::Ruby => "Gemfile.lock",
        }
    }
}

/// One package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    /// Its name.
    pub name: String,
    /// Its version (none for an unpinned requirement).
    pub version: Option<String>,
    /// Its package URL.
    pub purl: String,
    /// What listed it.
    pub source: Origin,
    /// The file that listed it (absolute path in the image).
    pub location: String,
    /// Declared license, when the database has one.
    pub license: Option<String>,
    /// Maintainer, when the database has one.
    pub supplier: Option<String>,
}

/// What [`scan`] found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Every package, sorted.
    pub packages: Vec<Package>,
    /// `ID` and `VERSION_ID` of os-release.
    pub distro: Option<(String, String)>,
    /// What could not be read, for the document's comment.
    pub notes: Vec<String>,
}

/// Largest file read for the SBOM (a dpkg status of a large image is a few MiB).
const MAX_FILE: u64 = 32 << 20;
/// At most this many lockfiles are read.
const MAX_LOCKFILES: usize = 10_000;

/// Largest RPM SQLite database read (a full distribution's is some tens of MiB).
const MAX_RPMDB: u64 = 256 << 20;

/// RPM databases hoist detects but does not read (Berkeley DB, NDB).
const RPM_DBS: &[&str] = &[
    "var/lib/rpm/Packages",
    "var/lib/rpm/Packages.db",
    "usr/lib/sysimage/rpm/Packages",
    "usr/lib/sysimage/rpm/Packages.db",
];

/// RPM SQLite databases, read.
const RPM_SQLITE: &[&str] = &[
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
];

/// What a path is to the scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interest {
    Read,
    Presence,
}

fn interest(path: &str) -> Option<Interest> {
    if path == "var/lib/dpkg/status"
        || path == "lib/apk/db/installed"
        || path == "etc/os-release"
        || path == "usr/lib/os-release"
        || RPM_SQLITE.contains(&path)
        || path
            .strip_prefix("var/lib/dpkg/status.d/")
            .is_some_and(|n| !n.contains('/') && !n.ends_with(".md5sums"))
    {
        return Some(Interest::Read);
    }
    if RPM_DBS.contains(&path) {
        return Some(Interest::Presence);
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    lockfiles::is_lockfile(name).then_some(Interest::Read)
}

fn normalize(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Read `manifest`'s layers from `src` and list the packages of the resulting filesystem.
pub fn scan(src: &dyn Source, manifest: &Manifest) -> Result<Scan> {
    let mut files: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    let mut notes = Vec::new();
    for (i, desc) in manifest.layers.iter().enumerate() {
        if media_type::is_foreign_layer(&desc.media_type) && !src.has_blob(desc)? {
            notes.push(format!(
                "layer {i} ({}) is a non-distributable layer that was not read",
                desc.digest
            ));
            continue;
        }
        let name = LayerName::new(i, &desc.digest);
        let blob = src.blob(desc)?;
        let stream = LayerStream::open(
            blob,
            StreamCheck {
                name: name.clone(),
                compression: media_type::layer_compression(&desc.media_type),
                ..Default::default()
            },
        )?;
        let mut archive = tar::Archive::new(stream);
        let mut whiteouts: Vec<String> = Vec::new();
        let mut opaque: Vec<String> = Vec::new();
        let mut added: Vec<(String, Option<Option<Vec<u8>>>)> = Vec::new();
        let entries = archive
            .entries()
            .map_err(|e| name.error("reading the layer", e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| name.error("reading the layer", e))?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = normalize(&raw);
            let (dir, base) = match path.rsplit_once('/') {
                Some((d, b)) => (d.to_string(), b.to_string()),
                None => (String::new(), path.clone()),
            };
            if base == ".wh..wh..opq" {
                opaque.push(dir);
                continue;
            }
            if let Some(gone) = base.strip_prefix(".wh.") {
                whiteouts.push(if dir.is_empty() {
                    gone.to_string()
                } else {
                    format!("{dir}/{gone}")
                });
                continue;
            }
            let kind = entry.header().entry_type();
            let wanted = interest(&path);
            if !kind.is_file() {
                if wanted.is_some() || files.contains_key(&path) {
                    added.push((path, None)); // replaced by a non-file
                }
                continue;
            }
            match wanted {
                None => {}
                Some(Interest::Presence) => added.push((path, Some(None))),
                Some(Interest::Read) => {
                    let size = entry.header().size().unwrap_or(0);
                    let max = if RPM_SQLITE.contains(&path.as_str()) {
                        MAX_RPMDB
                    } else {
                        MAX_FILE
                    };
                    if size > max {
                        notes.push(format!("/{path} ({size} bytes) is too large to read"));
                        added.push((path, None));
                        continue;
                    }
                    let mut buf = Vec::with_capacity(size as usize);
                    entry
                        .by_ref()
                        .take(max)
                        .read_to_end(&mut buf)
                        .map_err(|e| name.error("reading a file of the layer", e))?;
                    added.push((path, Some(Some(buf))));
                }
            }
        }
        for d in opaque {
            let prefix = format!("{d}/");
            files.retain(|k, _| !(d.is_empty() || k.starts_with(&prefix)));
        }
        for w in whiteouts {
            let prefix = format!("{w}/");
            files.retain(|k, _| k != &w && !k.starts_with(&prefix));
        }
        for (path, content) in added {
            match content {
                Some(c) => {
                    files.insert(path, c);
                }
                None => {
                    files.remove(&path);
                }
            }
        }
    }
    Ok(from_files(&files, notes))
}

/// The packages of the captured files (path → bytes, `None`: present, not read).
fn from_files(files: &BTreeMap<String, Option<Vec<u8>>>, mut notes: Vec<String>) -> Scan {
    let text = |p: &str| {
        files
            .get(p)
            .and_then(|c| c.as_ref())
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let distro = text("etc/os-release")
        .or_else(|| text("usr/lib/os-release"))
        .map(|t| os_release(&t));
    let mut packages = Vec::new();
    let mut lockfiles_read = 0;
    for (path, content) in files {
        let location = format!("/{path}");
        if path == "var/lib/dpkg/status" || path.starts_with("var/lib/dpkg/status.d/") {
            if let Some(c) = content {
                packages.extend(dpkg::parse(
                    &String::from_utf8_lossy(c),
                    &location,
                    distro.as_ref(),
                ));
            }
        } else if path == "lib/apk/db/installed" {
            if let Some(c) = content {
                packages.extend(apk::parse(
                    &String::from_utf8_lossy(c),
                    &location,
                    distro.as_ref(),
                ));
            }
        } else if RPM_SQLITE.contains(&path.as_str()) {
            if let Some(c) = content {
                packages.extend(rpm::parse_sqlite(c, &location, distro.as_ref(), &mut notes));
            }
        } else if RPM_DBS.contains(&path.as_str()) {
            notes.push(format!(
                "RPM database {location} found but not read: hoist reads only RPM's SQLite \
                 database (rpmdb.sqlite), not Berkeley DB or NDB, so its packages are not listed"
            ));
        } else if path.ends_with("os-release") {
        } else if let Some(c) = content {
            lockfiles_read += 1;
            if lockfiles_read > MAX_LOCKFILES {
                notes.push(format!(
                    "more than {MAX_LOCKFILES} lockfiles: the rest were not read"
                ));
                break;
            }
            let name = path.rsplit('/').next().unwrap_or(path);
            packages.extend(lockfiles::parse(
                name,
                &String::from_utf8_lossy(c),
                &location,
            ));
        }
    }
    packages.sort();
    packages.dedup();
    Scan {
        packages,
        distro,
        notes,
    }
}

fn os_release(text: &str) -> (String, String) {
    let mut id = String::new();
    let mut version = String::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
            match k.trim() {
                "ID" => id = v,
                "VERSION_ID" => version = v,
                _ => {}
            }
        }
    }
    (id, version)
}

#[cfg(test)]
mod tests;
