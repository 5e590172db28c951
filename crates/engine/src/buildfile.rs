//! The build file: several images from one repository in one run, for `hoist bake` and
//! the task mode's `HOIST_BUILD_FILE` alike.
//!
//! TOML (or YAML with a `.yml`/`.yaml` name). Paths are relative to the build file's
//! directory (output destinations too); `dockerfile` is relative to the image's context,
//! as in `docker buildx bake`. `outputs` and `push` are `hoist bake`'s (a task writes each
//! image to its output directory, named by `output`). [`build_all`] builds a list of
//! images in one call, sharing the step cache.
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
//! output = "worker-image"   # task output directory (default: the image's name)
//! platform = "linux/arm64"
//! outputs = ["type=oci,dest=out/worker"]   # hoist bake: --output values
//! push = true                               # hoist bake: push to every tag
//! attest = ["type=provenance,mode=max", "type=sbom"]   # as buildx bake spells it
//! ```
//!
//! `attest` entries of `[defaults]` apply first, then the image's (so an image can turn
//! one off with `type=sbom,disabled=true`); `hoist bake --provenance/--sbom/--attest`
//! flags apply over both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hoist_image::Platform;
use serde::Deserialize;

use crate::options::BuildOptions;
use crate::output::OutputSpec;
use crate::progress::{Event, Progress};

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
    /// `hoist bake`: `--output` values (destinations relative to the build file).
    #[serde(default)]
    pub outputs: Vec<String>,
    /// `hoist bake`: push to every tag.
    #[serde(default)]
    pub push: bool,
    /// Attestations, as buildx bake's `attest` (`type=provenance,mode=max`, `type=sbom`).
    #[serde(default)]
    pub attest: Vec<String>,
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
    /// `hoist bake`'s outputs, destinations resolved against the build file's directory.
    pub outputs: Vec<OutputSpec>,
    /// `hoist bake`: push to every tag.
    pub push: bool,
    /// Attestations (`[defaults]`' then the image's).
    pub attest: hoist_attest::options::AttestOptions,
}

impl ImageSpec {
    /// Build options for this image over `base` (cache, registry and pull settings): the
    /// context, Dockerfile, target, args (over `base`'s), labels, platforms, tags and
    /// outputs of the entry, plus a push to every tag when asked.
    pub fn options(&self, base: &BuildOptions) -> Result<BuildOptions, String> {
        let mut o = base.clone();
        o.context = self.context.clone();
        o.dockerfile = Some(self.dockerfile.clone());
        o.target = self.target.clone();
        o.build_args.extend(self.args.clone());
        o.labels.extend(self.labels.clone());
        if !self.platforms.is_empty() {
            o.platforms = self.platforms.clone();
        }
        o.tags = self.tags.clone();
        o.outputs = self.outputs.clone();
        if self.attest.any() {
            o.attest = self.attest.clone();
        }
        if self.push {
            if self.tags.is_empty() {
                return Err(format!("image {}: push = true needs tags", self.name));
            }
            o.outputs
                .push(OutputSpec::parse("type=image,push=true").map_err(|e| e.to_string())?);
        }
        Ok(o)
    }
}

/// Build every image in order, each with its own outputs, into one shared cache (a stage
/// two images share is built once: the second finds it in the step cache). Stops at the
/// first failure, naming the image. One call for the whole list, so a parallel engine can
/// schedule independent images together without changing callers.
pub fn build_all(
    images: &[(String, BuildOptions)],
    progress: &dyn Progress,
) -> Result<Vec<(String, crate::BuildResult)>, (String, crate::Error)> {
    let mut out = Vec::new();
    for (name, opts) in images {
        progress.event(Event::Info(&format!("building {name}")));
        let r = crate::build(opts, progress).map_err(|e| (name.clone(), e))?;
        out.push((name.clone(), r));
    }
    Ok(out)
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
    let base = crate::options::absolute(path.parent().unwrap_or(Path::new(".")));
    let base = if base.as_os_str().is_empty() {
        crate::options::absolute(Path::new("."))
    } else {
        base
    };
    let base = base.as_path();
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
            Some(p) => parse_platforms(p).map_err(|m| err(format!("platform {m}")))?,
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
        let mut outputs_spec = Vec::new();
        for o in d.outputs.iter().chain(&e.outputs) {
            let mut spec = OutputSpec::parse(o).map_err(|m| err(m.to_string()))?;
            spec.output.make_absolute_in(base);
            outputs_spec.push(spec);
        }
        let mut attest = hoist_attest::options::AttestOptions::default();
        for a in d.attest.iter().chain(&e.attest) {
            attest
                .attest_flag(a)
                .map_err(|m| err(format!("attest: {m}")))?;
        }
        out.push(ImageSpec {
            attest,
            name: name.clone(),
            context,
            dockerfile,
            target: e.target.clone().or_else(|| d.target.clone()),
            args,
            labels,
            tags,
            platforms,
            output,
            outputs: outputs_spec,
            push: e.push || d.push,
        });
    }
    Ok(out)
}

/// `linux/amd64,linux/arm64`: each platform once, in order (the task's `IMAGE_PLATFORM`
/// and the build file's `platform`).
pub fn parse_platforms(s: &str) -> Result<Vec<Platform>, String> {
    let mut out: Vec<Platform> = Vec::new();
    for one in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p = Platform::parse(one).ok_or_else(|| {
            format!("{one:?} is not a platform (expected os/arch[/variant], e.g. linux/arm64)")
        })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err(format!("{s:?} names no platform"));
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
        let (_d, p) = setup(
            "b.toml",
            "[images.one]\ncontext = \"a\"\nattest = [\"type=provenance,mode=huge\"]\n",
        );
        let e = load(&p).unwrap_err();
        assert!(
            e.contains("image one: attest") && e.contains("mode=huge"),
            "{e}"
        );
    }

    #[test]
    fn attest_as_buildx_bake_spells_it() {
        use hoist_attest::options::ProvenanceMode;
        let (_d, p) = setup(
            "hoist.toml",
            "[defaults]\nattest = [\"type=provenance,mode=max\", \"type=sbom\"]\n\n[images.one]\ncontext = \"a\"\n\n[images.two]\ncontext = \"b\"\nattest = [\"type=sbom,disabled=true\"]\n",
        );
        let v = load(&p).unwrap();
        assert_eq!(v[0].attest.provenance, Some(ProvenanceMode::Max));
        assert!(v[0].attest.sbom);
        assert_eq!(v[1].attest.provenance, Some(ProvenanceMode::Max));
        assert!(!v[1].attest.sbom);
        let o = v[0].options(&BuildOptions::new(".")).unwrap();
        assert_eq!(o.attest, v[0].attest);
    }
}
