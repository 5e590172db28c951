//! The build file: several images from one repository in one task run.
//!
//! TOML (or YAML with a `.yml`/`.yaml` name). Paths are relative to the build file's
//! directory; `dockerfile` is relative to the image's context, as in `docker buildx bake`.
//!
//! ```toml
//! [defaults]              # optional: every image starts from these
//! context = "."
//! args = { GO_VERSION = "1.23" }
//! labels = { "org.opencontainers.image.vendor" = "Example" }
//!
//! [images.api]            # written to the task output `api/` (if declared)
//! context = "services/api"
//! target = "runtime"
//! args = { SERVICE = "api" }
//! tags = ["registry.example.com/api:latest"]
//!
//! [images.worker]
//! dockerfile = "docker/worker.Dockerfile"
//! output = "worker-image"   # output directory (default: the image's name)
//! platform = "linux/arm64"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hoist_image::Platform;
use serde::Deserialize;

/// One entry of the build file (also used for `[defaults]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageEntry {
    /// The context directory.
    pub context: Option<PathBuf>,
    /// The Dockerfile, relative to the context (default `Dockerfile`).
    pub dockerfile: Option<PathBuf>,
    /// The stage to build.
    pub target: Option<String>,
    /// Build args.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Names recorded in `image.tar` (`docker load` tags).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The platform(s), comma-separated.
    pub platform: Option<String>,
    /// The task output directory (default: the image's name).
    pub output: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    #[serde(default)]
    defaults: ImageEntry,
    images: BTreeMap<String, ImageEntry>,
}

/// One image to build, with defaults applied and paths resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// The image's name in the file.
    pub name: String,
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile.
    pub dockerfile: PathBuf,
    /// The stage to build.
    pub target: Option<String>,
    /// Build args (the file's; the task's `BUILD_ARG_*` fill in what these leave unset).
    pub args: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Names recorded in `image.tar`.
    pub tags: Vec<String>,
    /// The platforms (empty: the task's `IMAGE_PLATFORM`, else the worker's).
    pub platforms: Vec<Platform>,
    /// The task output directory name.
    pub output: String,
}

/// Load and validate a build file. Errors name the file and, where known, the image.
pub fn load(path: &Path) -> Result<Vec<ImageSpec>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml") | Some("yaml")
    );
    let model: FileModel = if yaml {
        serde_norway::from_str(&text).map_err(|e| match e.location() {
            Some(l) => format!("{}:{}: {e}", path.display(), l.line()),
            None => format!("{}: {e}", path.display()),
        })?
    } else {
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(l) => format!("{}:{l}: {}", path.display(), e.message()),
                None => format!("{}: {}", path.display(), e.message()),
            }
        })?
    };
    let base = path.parent().unwrap_or(Path::new("."));
    if model.images.is_empty() {
        return Err(format!("{}: no [images.NAME] entries", path.display()));
    }
    if model.defaults.output.is_some() {
        return Err(format!(
            "{}: [defaults] cannot set output (each image needs its own)",
            path.display()
        ));
    }
    let d = &model.defaults;
    let mut out = Vec::new();
    let mut outputs = BTreeMap::new();
    for (name, e) in &model.images {
        let err = |m: String| format!("{}: image {name}: {m}", path.display());
        if name.is_empty() || name.contains('/') || name == "cache" {
            return Err(err(
                "the name must be a plain directory name, not \"cache\"".into(),
            ));
        }
        let context = base.join(
            e.context
                .clone()
                .or_else(|| d.context.clone())
                .unwrap_or_else(|| ".".into()),
        );
        if !context.is_dir() {
            return Err(err(format!(
                "context {} is not a directory",
                context.display()
            )));
        }
        let dockerfile = context.join(
            e.dockerfile
                .clone()
                .or_else(|| d.dockerfile.clone())
                .unwrap_or_else(|| "Dockerfile".into()),
        );
        if !dockerfile.is_file() {
            return Err(err(format!(
                "Dockerfile {} is not a file",
                dockerfile.display()
            )));
        }
        let mut args = d.args.clone();
        args.extend(e.args.clone());
        let mut labels = d.labels.clone();
        labels.extend(e.labels.clone());
        let platforms = match e.platform.as_ref().or(d.platform.as_ref()) {
            None => Vec::new(),
            Some(p) => {
                crate::params::parse_platforms(p).map_err(|m| err(format!("platform {m}")))?
            }
        };
        let output = e.output.clone().unwrap_or_else(|| name.clone());
        if output.is_empty() || output.contains('/') || output == "cache" {
            return Err(err(format!(
                "output {output:?} must be a plain directory name"
            )));
        }
        if let Some(other) = outputs.insert(output.clone(), name.clone()) {
            return Err(err(format!(
                "output {output:?} is also used by image {other}"
            )));
        }
        let mut tags = d.tags.clone();
        tags.extend(e.tags.clone());
        out.push(ImageSpec {
            name: name.clone(),
            context,
            dockerfile,
            target: e.target.clone().or_else(|| d.target.clone()),
            args,
            labels,
            tags,
            platforms,
            output,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(file: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        for sub in ["a", "b"] {
            std::fs::create_dir(d.path().join(sub)).unwrap();
            std::fs::write(d.path().join(sub).join("Dockerfile"), "FROM scratch\n").unwrap();
        }
        let p = d.path().join(file);
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    #[test]
    fn toml_with_defaults() {
        let (d, p) = setup(
            "hoist.toml",
            "[defaults]\nargs = { X = \"1\", Y = \"d\" }\n\n[images.one]\ncontext = \"a\"\nargs = { Y = \"2\" }\ntags = [\"r/one:1\"]\n\n[images.two]\ncontext = \"b\"\ntarget = \"t\"\noutput = \"two-out\"\nplatform = \"linux/arm64\"\n",
        );
        let v = load(&p).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].name, "one");
        assert_eq!(v[0].context, d.path().join("a"));
        assert_eq!(v[0].dockerfile, d.path().join("a/Dockerfile"));
        assert_eq!(v[0].args["X"], "1");
        assert_eq!(v[0].args["Y"], "2");
        assert_eq!(v[0].output, "one");
        assert_eq!(v[1].output, "two-out");
        assert_eq!(v[1].target.as_deref(), Some("t"));
        assert_eq!(v[1].platforms.len(), 1);
    }

    #[test]
    fn yaml_and_errors() {
        let (_d, p) = setup("b.yaml", "images:\n  one:\n    context: a\n");
        assert_eq!(load(&p).unwrap()[0].name, "one");
        let (_d, p) = setup("b.toml", "[images.one]\ncontext = \"a\"\ncontxt = 1\n");
        let e = load(&p).unwrap_err();
        assert!(e.contains("b.toml:3") && e.contains("contxt"), "{e}");
        let (_d, p) = setup("b.toml", "[images.one]\ncontext = \"nope\"\n");
        assert!(load(&p).unwrap_err().contains("image one"));
        let (_d, p) = setup(
            "b.toml",
            "[images.one]\ncontext = \"a\"\noutput = \"x\"\n[images.two]\ncontext = \"b\"\noutput = \"x\"\n",
        );
        assert!(load(&p).unwrap_err().contains("also used"));
    }
}
