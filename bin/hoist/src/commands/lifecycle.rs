//! The push records every pushing command writes (see `hoist_promote::records`).

use anyhow::{Context, Result};
use hoist_engine::options::BuildOptions;
use hoist_engine::output::Output;
use hoist_engine::resolver::registry_reference;
use hoist_image::Digest;
use hoist_promote::records::{record_pushes, PushInfo};
use hoist_registry::{Client, Reference};

use super::build::BuildArgs;

/// Record a push of `digest` to `dests`. A failure to record is an error: the image is
/// in the registry, but without its record prune would not know its age.
pub fn record(
    client: &Client,
    dests: &[Reference],
    digest: &Digest,
    info: &PushInfo,
) -> Result<()> {
    record_pushes(client, dests, digest, info).with_context(|| {
        format!(
            "recording the push of {digest} (the image is pushed; its push record is not, \
             so retention will keep it as of unknown age)"
        )
    })?;
    Ok(())
}

/// After `hoist build`: record the push to every name a pushing output pushed to.
pub fn record_build_pushes(args: &BuildArgs, opts: &BuildOptions, digest: &Digest) -> Result<()> {
    let mut names = Vec::new();
    for o in &opts.outputs {
        if let Output::Image {
            names: n,
            push: true,
        } = &o.output
        {
            names.extend(if n.is_empty() {
                opts.tags.clone()
            } else {
                n.clone()
            });
        }
    }
    if names.is_empty() {
        return Ok(());
    }
    let dests = names
        .iter()
        .map(|n| registry_reference(n))
        .collect::<Result<Vec<_>, _>>()?;
    let git = hoist_engine::provenance::git_info(&args.context);
    let client = Client::new(args.registry.to_config())?;
    record(
        &client,
        &dests,
        digest,
        &PushInfo {
            via: "build".into(),
            from: None,
            source: git.as_ref().and_then(|g| g.source.clone()),
            commit: git.as_ref().map(|g| g.sha.clone()),
            build_id: None,
        },
    )
}
