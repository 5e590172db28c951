//! WORKDIR: sets the config's working directory and creates it (and its missing
//! parents) as a layer, owned by the stage's USER, as BuildKit does.

use hoist_image::layer::{Entry, EntryKind};

use crate::error::{Error, Result};
use crate::execute::StepCx;
use crate::fsview::{self, FsView};
use crate::stage::StageState;

/// Apply `WORKDIR path`; `Ok(true)` when the directory layer came from the cache.
pub(crate) fn workdir(cx: &StepCx<'_, '_>, state: &mut StageState, path: &str) -> Result<bool> {
    let eng = cx.eng;
    let wd = normalize_workdir(&state.workdir(), path);
    state.cfg().working_dir = Some(wd.clone());
    let mut layer = false;
    let mut cached = false;
    if wd != "/" {
        let user = state.user();
        let owner = if user.is_empty() {
            (0, 0)
        } else {
            eng.chown_ids(state, Some(&user))?.unwrap_or((0, 0))
        };
        let entries = mkdir_entries(&state.view, &wd, owner, eng.mtime_rule().created())?;
        (layer, cached) = eng.layer_step(state, &cx.step.instr.kind, &entries)?;
    } else {
        super::chain(cx, state)?;
    }
    eng.history(state, format!("WORKDIR {wd}"), !layer);
    Ok(cached)
}

/// BuildKit's `NormalizeWorkdir` for Linux: an absolute path is kept as written (a
/// trailing `/` stays in the config), a relative one is joined to the current one and
/// cleaned (Go's `path.Join`).
pub fn normalize_workdir(current: &str, requested: &str) -> String {
    if requested.starts_with('/') {
        return requested.to_string();
    }
    let joined = format!("{}/{}", current.trim_end_matches('/'), requested);
    format!("/{}", crate::copy::clean_rel(&joined))
}

/// Entries creating `dir` and its missing parents.
pub(crate) fn mkdir_entries(
    view: &FsView,
    dir: &str,
    owner: (u32, u32),
    mtime: i64,
) -> Result<Vec<Entry>> {
    let real = view.resolve(dir, true)?;
    let mut out = Vec::new();
    let mut p = real.as_str();
    let mut missing = Vec::new();
    while !p.is_empty() {
        match view.get(p) {
            Some(m) if m.is_dir() => break,
            Some(_) if view.is_dir(p) => break,
            Some(_) => {
                return Err(Error::Invalid(format!(
                    "cannot create directory /{p}: a file is in the way"
                )))
            }
            None => missing.push(p.to_string()),
        }
        p = fsview::parent_of(p);
    }
    for m in missing.into_iter().rev() {
        let mut e = Entry::new(m, EntryKind::Dir, 0o755);
        e.uid = owner.0;
        e.gid = owner.1;
        e.mtime = mtime;
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdir() {
        assert_eq!(normalize_workdir("/", "app"), "/app");
        assert_eq!(normalize_workdir("/app", "../x/./y/"), "/x/y");
        assert_eq!(normalize_workdir("/a", "/b"), "/b");
        assert_eq!(normalize_workdir("/a", "/tmp/"), "/tmp/");
        assert_eq!(normalize_workdir("/tmp/", "x/"), "/tmp/x");
    }
}
