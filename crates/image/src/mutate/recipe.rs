//! [`Recipe`]: what `hoist assemble` is told (files to add, config to set), applied to
//! a base [`Image`]. The same recipe comes from flags or from a TOML file.
//!
//! ```toml
//! base = "docker://registry.example/base:1"   # or "scratch", "oci:DIR[:TAG]"
//! entrypoint = ["/app"]
//! env = { MODE = "prod" }
//! expose = ["8080"]
//! one_layer = false
//!
//! [[add]]
//! src = "bin/amd64/app"     # relative to the file's directory
//! dest = "/app"
//! mode = "0755"
//! owner = "1000:1000"
//! platform = "linux/amd64"  # only in that platform's image
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::layer::{
    normalize_path, walk, Entry, ModeOverride, MtimePolicy, Ownership, WalkOptions, WriteOptions,
};
use crate::{BlobStore, Error, Platform, Result};

use super::{sorted_entries, Addendum, Image, Layer};

/// One group of files to add: `[PLATFORM=]SRC:DEST[,mode=0755][,owner=UID:GID]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddSpec {
    /// Host file or directory.
    pub src: PathBuf,
    /// In-image path (a directory's contents go under it).
    pub dest: String,
    /// Octal mode for every file and directory added (`0755`).
    #[serde(default)]
    pub mode: Option<String>,
    /// `UID:GID` for every entry added (default `0:0`).
    #[serde(default)]
    pub owner: Option<String>,
    /// Only add to this platform's image.
    #[serde(default)]
    pub platform: Option<String>,
}

impl AddSpec {
    /// Parse the value of `--add`.
    ///
    /// ```
    /// use hoist_image::mutate::AddSpec;
    /// let a = AddSpec::parse("linux/arm64=bin/app:/app,mode=0755,owner=1000:1000")?;
    /// assert_eq!(a.platform.as_deref(), Some("linux/arm64"));
    /// assert_eq!((a.src.to_str(), a.dest.as_str()), (Some("bin/app"), "/app"));
    /// # Ok::<(), hoist_image::Error>(())
    /// ```
    pub fn parse(s: &str) -> Result<AddSpec> {
        let bad = |why: &str| {
            Error::Format(format!(
                "--add {s:?}: {why} (expected [PLATFORM=]SRC:DEST[,mode=0755][,owner=UID:GID])"
            ))
        };
        let mut parts = s.split(',');
        let main = parts.next().unwrap_or_default();
        let (platform, main) = match main.split_once('=') {
            Some((p, rest)) if p.contains('/') && !p.contains(':') => (Some(p.to_string()), rest),
            _ => (None, main),
        };
        let (src, dest) = main
            .rsplit_once(':')
            .ok_or_else(|| bad("no ':' between SRC and DEST"))?;
        if src.is_empty() || dest.is_empty() {
            return Err(bad("empty SRC or DEST"));
        }
        let mut a = AddSpec {
            src: src.into(),
            dest: dest.into(),
            mode: None,
            owner: None,
            platform,
        };
        for opt in parts {
            match opt.split_once('=') {
                Some(("mode", v)) => a.mode = Some(v.into()),
                Some(("owner", v)) => a.owner = Some(v.into()),
                _ => return Err(bad(&format!("unknown option {opt:?}"))),
            }
        }
        a.check()?;
        Ok(a)
    }

    fn check(&self) -> Result<()> {
        self.mode_override()?;
        self.ids()?;
        self.target_platform()?;
        Ok(())
    }

    fn mode_override(&self) -> Result<Option<ModeOverride>> {
        self.mode
            .as_deref()
            .map(|m| {
                if m.is_empty() || !m.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    return Err(Error::Format(format!(
                        "add {}: mode {m:?} is not octal",
                        self.dest
                    )));
                }
                ModeOverride::parse(m)
            })
            .transpose()
    }

    fn ids(&self) -> Result<(u32, u32)> {
        let Some(o) = &self.owner else {
            return Ok((0, 0));
        };
        let parse = |v: &str| v.parse::<u32>().ok();
        match o.split_once(':') {
            Some((u, g)) => parse(u).zip(parse(g)),
            None => parse(o).map(|u| (u, u)),
        }
        .ok_or_else(|| {
            Error::Format(format!(
                "add {}: owner {o:?} is not UID[:GID] (numbers)",
                self.dest
            ))
        })
    }

    /// The platform this group is limited to, if any.
    pub fn target_platform(&self) -> Result<Option<Platform>> {
        self.platform
            .as_deref()
            .map(|p| {
                Platform::parse(p).ok_or_else(|| {
                    Error::Format(format!(
                        "add {}: {p:?} is not a platform (os/arch[/variant])",
                        self.dest
                    ))
                })
            })
            .transpose()
    }

    /// The entries this group adds, in layer order, with its owner and mode applied,
    /// and the parent directories of `dest` (0755, 0:0).
    fn entries(&self, base_dir: &Path) -> Result<Vec<Entry>> {
        let src = base_dir.join(&self.src);
        let dest = normalize_path(&self.dest)?;
        let (uid, gid) = self.ids()?;
        let mode = self.mode_override()?;
        let mut out = Vec::new();
        let mut parent = String::new();
        let comps: Vec<&str> = dest.split('/').collect();
        for c in &comps[..comps.len().saturating_sub(1)] {
            parent = if parent.is_empty() {
                c.to_string()
            } else {
                format!("{parent}/{c}")
            };
            out.push(Entry::dir(parent.clone()));
        }
        for e in walk(&src, &dest, &WalkOptions::default(), &|_, _| true)
            .map_err(|e| Error::Format(format!("add {}: {e}", src.display())))?
        {
            let mut e = e?;
            e.uid = uid;
            e.gid = gid;
            if let Some(m) = &mode {
                if !matches!(e.kind, crate::layer::EntryKind::Symlink(_)) {
                    e.mode = m.apply(e.mode, e.is_dir());
                }
            }
            out.push(e);
        }
        Ok(out)
    }
}

/// Everything `hoist assemble` sets on top of a base.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The base image reference (`scratch` when absent). Resolved by the caller.
    #[serde(default)]
    pub base: Option<String>,
    /// Platforms to assemble (default: those named by `add` groups, else the host's).
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Files to add, in order.
    #[serde(default)]
    pub add: Vec<AddSpec>,
    /// Put every group into one layer instead of one layer per group.
    #[serde(default)]
    pub one_layer: bool,
    /// `ENTRYPOINT` (exec form).
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD` (exec form).
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Environment (set after the base's).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// User.
    #[serde(default)]
    pub user: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Exposed ports (`8080`, `53/udp`).
    #[serde(default)]
    pub expose: Vec<String>,
}

impl Recipe {
    /// The platforms to make images for: `platforms`, else every platform an `add`
    /// names, else `host`.
    pub fn target_platforms(&self, host: &Platform) -> Result<Vec<Platform>> {
        let mut out: Vec<Platform> = Vec::new();
        for p in &self.platforms {
            out.push(Platform::parse(p).ok_or_else(|| {
                Error::Format(format!("platform {p:?} is not os/arch[/variant]"))
            })?);
        }
        if out.is_empty() {
            for a in &self.add {
                if let Some(p) = a.target_platform()? {
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
        if out.is_empty() {
            out.push(host.clone());
        }
        Ok(out)
    }

    /// Apply the recipe to `base` (the `platform` image): layers written into `store`
    /// (paths relative to `dir`), config set, times from `epoch` (all file mtimes and
    /// every date: the image is the same whenever and wherever it is made).
    pub fn apply(
        &self,
        base: Image,
        platform: &Platform,
        dir: &Path,
        store: &BlobStore,
        epoch: i64,
        opts: &WriteOptions,
    ) -> Result<Image> {
        let opts = WriteOptions {
            ownership: Ownership::Preserve,
            mtime: MtimePolicy::Fixed(epoch),
            source_date_epoch: None,
            mode_override: None,
            ..opts.clone()
        };
        let mut img = base.with_time(epoch);
        let groups: Vec<&AddSpec> = self
            .add
            .iter()
            .filter(|a| {
                a.target_platform()
                    .ok()
                    .flatten()
                    .is_none_or(|p| p.matches(platform) || platform.matches(&p))
            })
            .collect();
        if self.one_layer && !groups.is_empty() {
            let mut all = Vec::new();
            for a in &groups {
                all.extend(a.entries(dir)?);
            }
            let layer = Layer::from_entries(store, sorted_entries(all), &opts)?;
            let what: Vec<String> = groups
                .iter()
                .map(|a| format!("{} {}", a.src.display(), a.dest))
                .collect();
            img = img.append([Addendum::new(
                layer,
                format!("hoist assemble: add {}", what.join(", ")),
            )]);
        } else {
            for a in &groups {
                let layer = Layer::from_entries(store, sorted_entries(a.entries(dir)?), &opts)?;
                img = img.append_layer(
                    layer,
                    format!("hoist assemble: add {} {}", a.src.display(), a.dest),
                );
            }
        }
        for (k, v) in &self.env {
            img = img.with_env(k, v);
        }
        if let Some(e) = &self.entrypoint {
            img = img.with_entrypoint(e.clone());
        }
        if let Some(c) = &self.cmd {
            img = img.with_cmd(c.clone());
        }
        if let Some(w) = &self.workdir {
            img = img.with_workdir(w.clone());
        }
        if let Some(u) = &self.user {
            img = img.with_user(u.clone());
        }
        for p in &self.expose {
            img = img.with_exposed_port(p);
        }
        Ok(img.with_labels(&self.labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_add_flags() {
        let a = AddSpec::parse("dist:/srv/www").unwrap();
        assert_eq!(a.platform, None);
        assert!(AddSpec::parse("nodest").is_err());
        assert!(AddSpec::parse("a:/b,mode=rwx").is_err());
        assert!(AddSpec::parse("a:/b,owner=x").is_err());
        assert!(AddSpec::parse("a:/b,colour=red").is_err());
        assert!(AddSpec::parse("linux/x86=a:/b").is_ok());
        // A source file may have '=' in its name when no platform is meant.
        assert_eq!(AddSpec::parse("k=v:/b").unwrap().src.to_str(), Some("k=v"));
    }

    #[test]
    fn one_layer_or_one_per_group_and_platform_filter() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a"), "a").unwrap();
        std::fs::write(t.path().join("b"), "b").unwrap();
        let store = BlobStore::new(t.path().join("blobs")).unwrap();
        let amd = Platform::parse("linux/amd64").unwrap();
        let mut r = Recipe {
            add: vec![
                AddSpec::parse("a:/x/a,mode=0700,owner=5:6").unwrap(),
                AddSpec::parse("linux/arm64=b:/x/b").unwrap(),
                AddSpec::parse("linux/amd64=b:/x/c").unwrap(),
            ],
            ..Default::default()
        };
        assert_eq!(r.target_platforms(&amd).unwrap().len(), 2);
        let img = r
            .apply(
                Image::empty(&amd),
                &amd,
                t.path(),
                &store,
                0,
                &WriteOptions::default(),
            )
            .unwrap();
        assert_eq!(img.layers().len(), 2, "arm64's group left out");
        r.one_layer = true;
        let one = r
            .apply(
                Image::empty(&amd),
                &amd,
                t.path(),
                &store,
                0,
                &WriteOptions::default(),
            )
            .unwrap();
        assert_eq!(one.layers().len(), 1);
        let mut tar = Vec::new();
        std::io::Read::read_to_end(&mut one.layers()[0].open_uncompressed().unwrap(), &mut tar)
            .unwrap();
        let mut ar = ::tar::Archive::new(&tar[..]);
        let got: Vec<(String, u32, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("x/".into(), 0o755, 0),
                ("x/a".into(), 0o700, 5),
                ("x/c".into(), 0o644, 0)
            ]
        );
    }

    #[test]
    fn recipe_from_toml_fields_are_checked() {
        let r: std::result::Result<Recipe, _> =
            serde_json::from_str(r#"{"entrypoint":["/a"],"bogus":1}"#);
        assert!(r.is_err());
    }
}
