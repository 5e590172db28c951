//! COPY (from the context, another stage, an image or a named context, plus heredoc
//! sources): plan the entries with Docker's semantics ([`crate::copy::plan`]), then the
//! cached layer or a new one.

use std::collections::BTreeMap;

use hoist_dockerfile::{CopySource, InstructionKind};
use hoist_image::layer::{Entry, EntryKind, FileSource, ModeOverride};

use crate::copy::{self, CopyRequest};
use crate::error::{Error, Result};
use crate::execute::{CopyFrom, StepCx};
use crate::fsview::{self, FsView};
use crate::stage::StageState;
use crate::steps::workdir::mkdir_entries;
use crate::tree::{LocalContext, StageTree};

/// Apply a COPY; `Ok(true)` when its layer came from the cache.
pub(crate) fn copy(cx: &StepCx<'_, '_>, state: &mut StageState) -> Result<bool> {
    let eng = cx.eng;
    let InstructionKind::Copy {
        sources,
        dest,
        from,
        chown,
        chmod,
        link,
        parents,
        exclude,
        ..
    } = &cx.step.instr.kind
    else {
        return Err(Error::Invalid(
            "not a COPY (a bug in the dispatcher)".into(),
        ));
    };
    let req = copy_request(
        cx,
        state,
        sources,
        dest,
        chown.as_deref(),
        chmod.as_deref(),
        *parents,
        exclude,
    )?;
    let msg = copy_history(
        "COPY",
        *parents,
        chown.as_deref(),
        chmod.as_deref(),
        sources,
        dest,
    );
    let entries = match from {
        Some(f) => plan_from(cx, state, cx.source(f)?, &req, *link)?,
        None => plan_context(cx, state, &req, sources, *link)?,
    };
    let (layer, cached) = eng.layer_step(state, &cx.step.instr.kind, &entries)?;
    eng.history(state, msg, !layer);
    Ok(cached)
}

/// The validated request of a COPY or ADD.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_request(
    cx: &StepCx<'_, '_>,
    state: &StageState,
    sources: &[CopySource],
    dest: &str,
    chown: Option<&str>,
    chmod: Option<&str>,
    parents: bool,
    exclude: &[String],
) -> Result<CopyRequest> {
    let chmod = chmod
        .map(|m| {
            ModeOverride::parse(m).map_err(|_| {
                Error::Invalid(format!(
                    "invalid chmod parameter: '{m}'. it should be octal string and between 0 and 07777, or a symbolic mode"
                ))
            })
        })
        .transpose()?;
    Ok(CopyRequest {
        sources: sources
            .iter()
            .filter_map(|s| match s {
                CopySource::Path(p) => Some(p.clone()),
                CopySource::Heredoc(_) => None,
            })
            .collect(),
        dest: if dest.is_empty() {
            "./".into()
        } else {
            dest.to_string()
        },
        workdir: state.workdir(),
        chown: cx.eng.chown_ids(state, chown)?,
        chmod,
        exclude: exclude.to_vec(),
        parents,
        mtime: cx.eng.mtime_rule(),
    })
}

/// Plan COPY from the build context (plus heredoc sources).
fn plan_context(
    cx: &StepCx<'_, '_>,
    state: &StageState,
    req: &CopyRequest,
    sources: &[CopySource],
    link: bool,
) -> Result<Vec<Entry>> {
    let empty = FsView::new();
    let view = if link { &empty } else { &state.view };
    let mut entries = if req.sources.is_empty() {
        Vec::new()
    } else {
        copy::plan(&cx.eng.context, req, view)?
    };
    let heredocs: Vec<_> = sources
        .iter()
        .filter_map(|s| match s {
            CopySource::Heredoc(h) => Some(h),
            _ => None,
        })
        .collect();
    if !heredocs.is_empty() {
        entries.extend(heredoc_entries(req, view, &heredocs, sources.len() > 1)?);
        merge_sorted(&mut entries);
    }
    Ok(entries)
}

/// Plan COPY --from a stage, an image or a named directory context.
fn plan_from(
    cx: &StepCx<'_, '_>,
    state: &StageState,
    src: &CopyFrom,
    req: &CopyRequest,
    link: bool,
) -> Result<Vec<Entry>> {
    let empty = FsView::new();
    let view = if link { &empty } else { &state.view };
    match src {
        CopyFrom::Dir(d) => {
            let ctx = LocalContext::new(d, None)?;
            copy::plan(&ctx, req, view)
        }
        CopyFrom::Stage(s) => {
            let rootfs = cx.eng.rootfs_of(s)?;
            let tree = StageTree::new(&s.view, rootfs);
            copy::plan(&tree, req, view)
        }
    }
}

/// BuildKit's history text for COPY/ADD: `COPY [--parents] [--chown=…] [--chmod=…] SRC… DEST # buildkit`.
pub(crate) fn copy_history(
    keyword: &str,
    parents: bool,
    chown: Option<&str>,
    chmod: Option<&str>,
    sources: &[CopySource],
    dest: &str,
) -> String {
    let mut msg = String::from(keyword);
    if parents {
        msg.push_str(" --parents");
    }
    if let Some(c) = chown.filter(|c| !c.is_empty()) {
        msg.push_str(&format!(" --chown={c}"));
    }
    if let Some(c) = chmod.filter(|c| !c.is_empty()) {
        msg.push_str(&format!(" --chmod={c}"));
    }
    for s in sources {
        match s {
            CopySource::Path(p) => msg.push_str(&format!(" {p}")),
            CopySource::Heredoc(h) => msg.push_str(&format!(" <<{}", h.name)),
        }
    }
    msg.push_str(&format!(" {dest} # buildkit"));
    msg
}

/// Entries for heredoc sources of COPY/ADD.
pub(crate) fn heredoc_entries(
    req: &CopyRequest,
    view: &FsView,
    heredocs: &[&hoist_dockerfile::Heredoc],
    several: bool,
) -> Result<Vec<Entry>> {
    let dest_abs = if req.dest.starts_with('/') {
        req.dest.clone()
    } else {
        format!("{}/{}", req.workdir.trim_end_matches('/'), req.dest)
    };
    let dest_clean = copy::clean_rel(&dest_abs);
    let dir_hint = req.dest.ends_with('/') || several || view.is_dir(&dest_clean);
    let mut out = Vec::new();
    for h in heredocs {
        let target = if dir_hint {
            fsview::join(&dest_clean, &h.name)
        } else {
            dest_clean.clone()
        };
        let (parent, leaf) = fsview::split(&target);
        let parent_real = view.resolve(parent, true)?;
        let owner = req.chown.unwrap_or((0, 0));
        out.extend(mkdir_entries(
            view,
            &parent_real,
            owner,
            req.mtime.created(),
        )?);
        let content = h.effective_content().into_bytes();
        let mode = match &req.chmod {
            Some(m) => m.apply(0o644, false),
            None => 0o644,
        };
        let mut e = Entry::new(
            fsview::join(&parent_real, leaf),
            EntryKind::File {
                size: content.len() as u64,
                source: FileSource::Bytes(content),
            },
            mode,
        );
        e.uid = owner.0;
        e.gid = owner.1;
        e.mtime = req.mtime.created();
        out.push(e);
    }
    Ok(out)
}

/// Sort entries and drop duplicates (the last one wins), keeping parents first.
pub(crate) fn merge_sorted(entries: &mut Vec<Entry>) {
    let mut map: BTreeMap<String, Entry> = BTreeMap::new();
    for e in entries.drain(..) {
        map.insert(e.path.clone(), e);
    }
    let mut v: Vec<Entry> = map.into_values().collect();
    v.sort_by(|a, b| hoist_image::layer::path_order(&a.path, &b.path));
    *entries = v;
}
