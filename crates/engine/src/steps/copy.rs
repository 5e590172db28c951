//! COPY (from the context, another stage, an image or a named context, plus heredoc
//! sources): plan the entries with Docker's semantics ([`crate::copy::plan`]), then the
//! cached layer or a new one.

use std::collections::BTreeMap;

use hoist_dockerfile::{CopySource, InstructionKind};
use hoist_image::layer::{Entry, ModeOverride};

use crate::copy::{self, CopyRequest};
use crate::error::{Error, Result};
use crate::execute::{CopyFrom, StepCx};
use crate::fsview::FsView;
use crate::stage::StageState;
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
    let msg = copy_history(
        "COPY",
        *parents,
        chown.as_deref(),
        chmod.as_deref(),
        sources,
        dest,
    );
    // COPY --from a stage or image: with remote caches, its result is also found by an
    // alias over the source's key, so a cached copy needs none of the source's files.
    let alias = match (from, &eng.remote) {
        (Some(f), Some(r)) => match cx.source(f)? {
            CopyFrom::Stage(s) => {
                let platform = state.config.platform();
                let a = crate::remote_cache::alias_key(
                    &state.key,
                    &cx.step.instr.kind,
                    &eng.settings(&platform),
                    &s.key,
                );
                if let Some(k) = r.alias(&a) {
                    if let Some(made) = eng.cache_hit(state, &k)? {
                        r.record_alias(a, k);
                        eng.history(state, msg, !made);
                        return Ok(true);
                    }
                }
                Some((r, a))
            }
            CopyFrom::Dir(_) => None,
        },
        _ => None,
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
    let entries = match from {
        Some(f) => plan_from(cx, state, cx.source(f)?, &req, *link)?,
        None => plan_context(cx, state, &req, *link)?,
    };
    let (layer, cached) = eng.layer_step(state, &cx.step.instr.kind, &entries)?;
    if let Some((r, a)) = alias {
        r.record_alias(a, state.key);
    }
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
        heredocs: crate::copy_sources::inline_files(sources),
        unpack: None,
        chown: cx.eng.chown_ids(state, chown)?,
        chmod,
        exclude: exclude.to_vec(),
        parents,
        mtime: cx.eng.mtime_rule(),
    })
}

/// Plan COPY from the build context (heredoc sources are in `req`).
fn plan_context(
    cx: &StepCx<'_, '_>,
    state: &StageState,
    req: &CopyRequest,
    link: bool,
) -> Result<Vec<Entry>> {
    let empty = FsView::new();
    let view = if link { &empty } else { &state.view };
    copy::plan(&cx.eng.context, req, view)
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
