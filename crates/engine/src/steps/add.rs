//! ADD: COPY plus local archive extraction and `http(s)://` sources with `--checksum`
//! (downloaded by [`crate::download`]).

use hoist_dockerfile::{CopySource, InstructionKind};
use hoist_image::layer::{Entry, EntryKind, FileSource};

use crate::copy::{self, CopyRequest};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::execute::StepCx;
use crate::fsview::{self, FsView};
use crate::stage::StageState;
use crate::steps::copy::{copy_history, copy_request, merge_sorted};
use crate::steps::workdir::mkdir_entries;

/// Apply an ADD: the same key and cache as COPY, over the planned entries (downloaded
/// and extracted contents included); `Ok(true)` when the layer came from the cache.
pub(crate) fn add(cx: &StepCx<'_, '_>, state: &mut StageState) -> Result<bool> {
    let InstructionKind::Add {
        sources,
        dest,
        chown,
        chmod,
        link,
        checksum,
        unpack,
        exclude,
        ..
    } = &cx.step.instr.kind
    else {
        return Err(Error::Invalid(
            "not an ADD (a bug in the dispatcher)".into(),
        ));
    };
    let req = copy_request(
        cx,
        state,
        sources,
        dest,
        chown.as_deref(),
        chmod.as_deref(),
        false,
        exclude,
    )?;
    let msg = copy_history(
        "ADD",
        false,
        chown.as_deref(),
        chmod.as_deref(),
        sources,
        dest,
    );
    let entries = plan_add(
        cx.eng,
        state,
        &req,
        sources,
        checksum.as_deref(),
        *unpack,
        *link,
    )?;
    let (layer, cached) = cx.eng.layer_step(state, &cx.step.instr.kind, &entries)?;
    cx.eng.history(state, msg, !layer);
    Ok(cached)
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn is_git(s: &str) -> bool {
    s.starts_with("git@")
        || s.starts_with("git://")
        || (is_url(s) && (s.ends_with(".git") || s.contains(".git#")))
}

fn url_file_name(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let after_scheme = no_query.split_once("://").map(|x| x.1).unwrap_or(no_query);
    match after_scheme.split_once('/') {
        Some((_, path)) => {
            let base = path.rsplit('/').next().unwrap_or("");
            if base.is_empty() || base == "." {
                "__unnamed__".into()
            } else {
                base.to_string()
            }
        }
        None => "__unnamed__".into(),
    }
}

/// Plan an ADD.
pub(crate) fn plan_add(
    eng: &Engine<'_>,
    state: &StageState,
    req: &CopyRequest,
    sources: &[CopySource],
    checksum: Option<&str>,
    unpack: Option<bool>,
    link: bool,
) -> Result<Vec<Entry>> {
    let _ = sources; // heredocs come in `req`
    let empty = FsView::new();
    let view = if link { &empty } else { &state.view };
    if checksum.is_some() && (req.sources.len() != 1 || !is_url(&req.sources[0])) {
        return Err(Error::Invalid(if req.sources.len() != 1 {
            "checksum can't be specified for multiple sources".into()
        } else {
            "checksum requires HTTP(S) or Git sources".into()
        }));
    }
    let dest_abs = if req.dest.starts_with('/') {
        req.dest.clone()
    } else {
        format!("{}/{}", req.workdir.trim_end_matches('/'), req.dest)
    };
    let dest_clean = copy::clean_rel(&dest_abs);
    let dest_is_dir = req.dest.ends_with('/') || view.is_dir(&dest_clean);
    let ctx = eng.context_tree();
    let mut plain = Vec::new();
    let mut entries = Vec::new();
    for s in &req.sources {
        if is_git(s) {
            return Err(Error::Unsupported(format!(
                "ADD from a git repository ({s}) is not supported by hoist yet; clone it into the context or use a stage"
            )));
        }
        if is_url(s) {
            let (path, size) = crate::download::download(
                s,
                checksum,
                &eng.scratch,
                &eng.opts.registry,
                &eng.opts.download,
                &eng.progress.transfers(),
            )?;
            let name = url_file_name(s);
            let target = if dest_is_dir {
                fsview::join(&dest_clean, &name)
            } else {
                dest_clean.clone()
            };
            let (parent, leaf) = fsview::split(&target);
            let parent_real = view.resolve(parent, true)?;
            let owner = req.chown.unwrap_or((0, 0));
            let mut sub = CopyRequest {
                sources: Vec::new(),
                ..req.clone()
            };
            sub.dest = format!("/{parent_real}/");
            let mode = match &req.chmod {
                Some(m) => m.apply(0o600, false),
                None => 0o600,
            };
            if unpack == Some(true) && crate::unpack::archive_kind(&path)?.is_some() {
                // BuildKit extracts a downloaded archive only with --unpack=true.
                let (dir, file) = (path.parent().unwrap_or(&eng.scratch), path.file_name());
                let sub = CopyRequest {
                    sources: vec![file.unwrap_or_default().to_string_lossy().into_owned()],
                    heredocs: Vec::new(),
                    unpack: Some(eng.scratch.clone()),
                    ..req.clone()
                };
                let dl = crate::tree::LocalContext::new(dir, None)?;
                entries.extend(copy::plan(&dl, &sub, view)?);
                continue;
            }
            let mut e = Entry::new(
                fsview::join(&parent_real, leaf),
                EntryKind::File {
                    source: FileSource::Path(path),
                    size,
                },
                mode,
            );
            e.uid = owner.0;
            e.gid = owner.1;
            e.mtime = req.mtime.created();
            entries.push(e);
            entries.extend(mkdir_entries(
                view,
                &parent_real,
                owner,
                req.mtime.created(),
            )?);
            continue;
        }
        plain.push(s.clone());
    }
    // Local sources (and heredocs): COPY's rules, archives extracted unless --unpack=false.
    if !plain.is_empty() || !req.heredocs.is_empty() {
        let sub = CopyRequest {
            sources: plain,
            unpack: (unpack != Some(false)).then(|| eng.scratch.clone()),
            ..req.clone()
        };
        entries.extend(copy::plan(ctx, &sub, view)?);
    }
    merge_sorted(&mut entries);
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_names() {
        assert_eq!(url_file_name("https://x.org/a/b.tar.gz?x=1"), "b.tar.gz");
        assert_eq!(url_file_name("https://x.org/"), "__unnamed__");
        assert_eq!(url_file_name("https://x.org"), "__unnamed__");
        assert!(is_git("https://github.com/a/b.git"));
        assert!(is_git("git@github.com:a/b.git"));
        assert!(!is_git("https://x.org/file.tar"));
    }
}
