//! Attestations of a build (`--provenance`, `--sbom`, `--attest`): what goes into each
//! image's attestation manifest. The layout is [`hoist_attest::layout`]'s (BuildKit's);
//! this module gathers the facts only the engine knows: the Dockerfile, the checkout,
//! the base images by digest, the steps, and the final image's packages.
//!
//! Attestations live in an image index, so outputs that hold one image (a
//! docker-archive) are refused before anything is built, and so are Docker media types
//! (a Docker manifest list cannot carry them).

use hoist_attest::intoto::{subject_name, SLSA_PROVENANCE_V1, SPDX_DOCUMENT};
use hoist_attest::layout::Predicate;
use hoist_attest::provenance::{self, BaseImage, GitSource, ProvenanceInput, Step};

use crate::engine::{BuiltImage, Engine};
use crate::error::{Error, Result};
use crate::options::BuildOptions;
use crate::output::Output;

/// Refuse outputs that cannot hold attestations.
pub fn check_outputs(opts: &BuildOptions, oci: bool) -> Result<()> {
    if !opts.attest.any() {
        return Ok(());
    }
    for o in &opts.outputs {
        if let Output::DockerArchive { dest, .. } = &o.output {
            return Err(Error::Invalid(format!(
                "--output type=docker,dest={}: a docker-archive holds one image and no image \
                 index, so it cannot carry attestations (--provenance/--sbom/--attest); use \
                 type=oci (a layout or archive) or push, or build without attestations",
                dest.display()
            )));
        }
        if o.oci_mediatypes == Some(false) {
            return Err(Error::Invalid(
                "attestations (--provenance/--sbom/--attest) need OCI media types: drop \
                 oci-mediatypes=false"
                    .into(),
            ));
        }
    }
    if !oci {
        return Err(Error::Invalid(
            "attestations need OCI media types (oci-mediatypes=true)".into(),
        ));
    }
    Ok(())
}

/// The predicates of `image` (SBOM first, then provenance, as BuildKit orders them).
pub(crate) fn predicates(
    eng: &Engine<'_>,
    input: &crate::Prepared,
    image: &BuiltImage,
) -> Result<Vec<Predicate>> {
    let opts = eng.opts;
    let name = subject_name(opts.tags.first().map(String::as_str), &image.platform);
    let mut out = Vec::new();
    let version = env!("CARGO_PKG_VERSION");
    if opts.attest.sbom {
        let manifest: hoist_image::Manifest = image
            .manifest
            .parse()
            .map_err(|e| Error::Invalid(format!("the built manifest: {e}")))?;
        let scan = hoist_attest::sbom::scan(&image.source(), &manifest)
            .map_err(|e| Error::Invalid(format!("scanning the image for the SBOM: {e}")))?;
        for n in &scan.notes {
            eng.progress
                .event(crate::progress::Event::Warning(&format!("SBOM: {n}")));
        }
        let doc_name = opts
            .tags
            .first()
            .cloned()
            .unwrap_or_else(|| image.digest().to_string());
        out.push(Predicate {
            subject_name: name.clone(),
            predicate_type: SPDX_DOCUMENT.into(),
            predicate: hoist_attest::sbom::spdx::document(
                &scan,
                &doc_name,
                &eng.created,
                &format!("hoist-{version}"),
            ),
        });
    }
    if let Some(mode) = opts.attest.provenance {
        let git = crate::provenance::git_info(&opts.context).map(|g| GitSource {
            url: g.source.clone(),
            commit: g.sha.clone(),
            dirty: g.dirty,
        });
        let bases = eng
            .resolved_images()
            .into_iter()
            .map(|(reference, platform, digest)| BaseImage {
                reference,
                digest,
                platform,
            })
            .collect();
        let epoch = eng.epoch.unwrap_or(0);
        let named_contexts = opts
            .named_contexts
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    crate::options::NamedContext::Dir(_) => "local directory".to_string(),
                    crate::options::NamedContext::Image(r) => provenance::strip_credentials(r),
                };
                (k.clone(), v)
            })
            .collect();
        let p = ProvenanceInput {
            mode,
            dockerfile: dockerfile_name(opts, &input.df_name),
            dockerfile_digest: input.df_digest.clone(),
            git,
            bases,
            build_args: opts.build_args.clone(),
            secret_ids: opts.secrets.iter().map(|s| s.id.clone()).collect(),
            secret_values: opts.secrets.iter().map(|s| s.value.clone()).collect(),
            target: opts.target.clone(),
            platform: image.platform.clone(),
            builder_version: version.into(),
            started: epoch,
            finished: epoch,
            steps: steps(&input.df),
            named_contexts,
        };
        out.push(Predicate {
            subject_name: name,
            predicate_type: SLSA_PROVENANCE_V1.into(),
            predicate: provenance::predicate(&p),
        });
    }
    Ok(out)
}

/// The Dockerfile's name relative to the context when it is inside it.
fn dockerfile_name(opts: &BuildOptions, df_name: &str) -> String {
    let p = std::path::Path::new(df_name);
    match p.strip_prefix(&opts.context) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| df_name.to_string()),
    }
}

/// An instruction's text with the values of secret-looking `ARG`/`ENV` keys replaced.
fn redact(text: &str) -> String {
    let upper = text.trim_start().to_ascii_uppercase();
    if !(upper.starts_with("ARG ") || upper.starts_with("ENV ")) {
        return text.to_string();
    }
    let mut words: Vec<String> = text.split(' ').map(str::to_string).collect();
    let mut secret_key_before = false;
    for w in words.iter_mut().skip(1) {
        if let Some((k, _)) = w.split_once('=') {
            if provenance::secret_looking_name(k) {
                *w = format!("{k}=<redacted>");
            }
            secret_key_before = false;
        } else if secret_key_before {
            *w = "<redacted>".into(); // ENV KEY value (legacy form)
            secret_key_before = false;
        } else {
            secret_key_before = !w.is_empty() && provenance::secret_looking_name(w);
        }
    }
    words.join(" ")
}

/// Every instruction as written, stage by stage (mode=max), secret-looking values
/// redacted.
fn steps(df: &hoist_dockerfile::Dockerfile) -> Vec<Step> {
    let mut out = Vec::new();
    for a in &df.global_args {
        out.push(Step {
            stage: "global".into(),
            line: a.span.start_line,
            text: redact(&a.original),
        });
    }
    for (i, s) in df.stages.iter().enumerate() {
        let stage = s.name.clone().unwrap_or_else(|| i.to_string());
        out.push(Step {
            stage: stage.clone(),
            line: s.from.span.start_line,
            text: s.from.original.clone(),
        });
        for ins in &s.instructions {
            out.push(Step {
                stage: stage.clone(),
                line: ins.span.start_line,
                text: redact(&ins.original),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn secret_looking_values_are_redacted_from_steps() {
        assert_eq!(
            redact("ARG GITHUB_TOKEN=abc VERSION=1"),
            "ARG GITHUB_TOKEN=<redacted> VERSION=1"
        );
        assert_eq!(
            redact("ENV DB_PASSWORD hunter2"),
            "ENV DB_PASSWORD <redacted>"
        );
        assert_eq!(redact("RUN make"), "RUN make");
        assert_eq!(redact("ARG VERSION"), "ARG VERSION");
    }
}
