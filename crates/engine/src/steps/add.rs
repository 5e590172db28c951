//! ADD: COPY plus local archive extraction and `http(s)://` sources with `--checksum`.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use hoist_dockerfile::{CopySource, InstructionKind};
use hoist_image::layer::{Entry, EntryKind, FileSource};
use hoist_image::Digest;

use crate::copy::{self, CopyRequest};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::execute::StepCx;
use crate::fsview::{self, FsView};
use crate::stage::StageState;
use crate::steps::copy::{copy_history, copy_request, heredoc_entries, merge_sorted};
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

/// What an archive file is compressed with, from its first bytes.
fn archive_kind(path: &Path) -> Result<Option<&'static str>> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]).map_err(|e| Error::io(path, e))? {
            0 => break,
            k => n += k,
        }
    }
    let h = &head[..n];
    Ok(if h.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if h.starts_with(b"BZh") {
        Some("bzip2")
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if n >= 262 && &h[257..262] == b"ustar" {
        Some("tar")
    } else {
        None
    })
}

fn open_archive(path: &Path, kind: &str) -> Result<Box<dyn Read>> {
    let f = BufReader::new(File::open(path).map_err(|e| Error::io(path, e))?);
    Ok(match kind {
        "gzip" => Box::new(flate2::bufread::MultiGzDecoder::new(f)),
        "bzip2" => Box::new(bzip2::bufread::MultiBzDecoder::new(f)),
        "xz" => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(f)),
        "zstd" => Box::new(
            zstd::stream::read::Decoder::with_buffer(f)
                .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?,
        ),
        _ => Box::new(f),
    })
}

/// Whether a compressed file really holds a tar (BuildKit only unpacks tar archives).
fn is_tar_archive(path: &Path, kind: &str) -> bool {
    if kind == "tar" {
        return true;
    }
    let Ok(mut r) = open_archive(path, kind) else {
        return false;
    };
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n >= 262 && &head[257..262] == b"ustar"
}

/// Extract a tar archive into entries under `dest_dir`, staging file contents in `scratch`.
fn extract_archive(
    path: &Path,
    kind: &str,
    dest_dir: &str,
    req: &CopyRequest,
    scratch: &Path,
) -> Result<Vec<Entry>> {
    let mut ar = tar::Archive::new(open_archive(path, kind)?);
    let mut out = Vec::new();
    let name = path.display().to_string();
    let err = |e: std::io::Error| Error::Invalid(format!("extracting {name}: {e}"));
    let staging = tempfile::Builder::new()
        .prefix("add-")
        .tempdir_in(scratch)
        .map_err(|e| Error::io(scratch, e))?;
    let staging = staging.keep();
    for (n, ent) in ar.entries().map_err(err)?.enumerate() {
        let mut ent = ent.map_err(err)?;
        let raw = String::from_utf8_lossy(&ent.path_bytes()).into_owned();
        let rel = hoist_image::layer::normalize_path(&raw).map_err(|_| {
            Error::Invalid(format!(
                "{name}: archive entry {raw:?} escapes the destination"
            ))
        })?;
        if rel.is_empty() {
            continue;
        }
        let h = ent.header().clone();
        let (uid, gid) = req
            .chown
            .unwrap_or((h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32));
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let link = || {
            ent.link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let kind = match h.entry_type() {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink(link()),
            tar::EntryType::Link => {
                let t = hoist_image::layer::normalize_path(&link()).map_err(|_| {
                    Error::Invalid(format!("{name}: hard link {raw:?} escapes the destination"))
                })?;
                EntryKind::Hardlink(fsview::join(dest_dir, &t))
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let staged = staging.join(n.to_string());
                let mut f = File::create(&staged).map_err(|e| Error::io(&staged, e))?;
                let size = std::io::copy(&mut ent, &mut f).map_err(err)?;
                f.flush().map_err(|e| Error::io(&staged, e))?;
                EntryKind::File {
                    source: FileSource::Path(staged),
                    size,
                }
            }
            tar::EntryType::Fifo => EntryKind::Fifo,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            other => {
                tracing::warn!("{name}: skipping {raw:?} of type {other:?}");
                continue;
            }
        };
        let is_dir = matches!(kind, EntryKind::Dir);
        let mode = match &req.chmod {
            Some(m) => m.apply(mode, is_dir),
            None => mode,
        };
        let mut e = Entry::new(fsview::join(dest_dir, &rel), kind, mode);
        e.uid = uid;
        e.gid = gid;
        e.mtime = req.mtime.for_source(h.mtime().unwrap_or(0) as i64);
        out.push(e);
    }
    Ok(out)
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn is_git(s: &str) -> bool {
    s.starts_with("git@")
        || s.starts_with("git://")
        || (is_url(s) && (s.ends_with(".git") || s.contains(".git#")))
}

/// Download `url` into `scratch`, verifying `checksum` if given.
fn download(
    url: &str,
    checksum: Option<&str>,
    scratch: &Path,
) -> Result<(std::path::PathBuf, u64)> {
    let expected = checksum
        .map(|c| Digest::parse(c).map_err(|e| Error::Invalid(format!("--checksum: {e}"))))
        .transpose()?;
    let client = reqwest::blocking::Client::builder()
        .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Invalid(format!("HTTP client: {e}")))?;
    let mut resp = client
        .get(url)
        .send()
        .map_err(|e| Error::Invalid(format!("downloading {url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(Error::Invalid(format!(
            "downloading {url}: HTTP {}",
            resp.status()
        )));
    }
    let tmp = tempfile::Builder::new()
        .prefix("download-")
        .tempfile_in(scratch)
        .map_err(|e| Error::io(scratch, e))?;
    let (file, path) = tmp.keep().map_err(|e| Error::io(scratch, e.error))?;
    let mut w = hoist_image::HashingWriter::new(std::io::BufWriter::new(file));
    resp.copy_to(&mut w)
        .map_err(|e| Error::Invalid(format!("downloading {url}: {e}")))?;
    let (mut inner, digest, size) = w.finish();
    inner.flush().map_err(|e| Error::io(&path, e))?;
    if let Some(exp) = expected {
        let actual = if exp.algorithm() == digest.algorithm() {
            digest
        } else {
            let mut h = exp.hasher();
            let mut f = File::open(&path).map_err(|e| Error::io(&path, e))?;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = f.read(&mut buf).map_err(|e| Error::io(&path, e))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            h.finish()
        };
        if actual != exp {
            return Err(Error::Invalid(format!(
                "checksum mismatch for {url}: expected {exp}, got {actual}"
            )));
        }
    }
    Ok((path, size))
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
    let empty = FsView::new();
    let view = if link { &empty } else { &state.view };
    if checksum.is_some() && (req.sources.len() != 1 || !is_url(&req.sources[0])) {
        return Err(Error::Invalid(if req.sources.len() != 1 {
            "checksum can't be specified for multiple sources".into()
        } else {
            "checksum requires HTTP(S) or Git sources".into()
        }));
    }
    if sources.len() > 1 && !req.dest.ends_with('/') {
        return Err(Error::Invalid(
            "when using ADD with more than one source file, the destination must be a directory and end with a /".into(),
        ));
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
            let (path, size) = download(s, checksum, &eng.scratch)?;
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
            if unpack == Some(true) {
                if let Some(kind) = archive_kind(&path)? {
                    if is_tar_archive(&path, kind) {
                        entries.extend(extract_archive(
                            &path,
                            kind,
                            &dest_clean,
                            req,
                            &eng.scratch,
                        )?);
                        continue;
                    }
                }
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
        // A local archive file is extracted unless --unpack=false.
        let rel = copy::clean_rel(s);
        if unpack != Some(false) && !copy::has_wildcard(&rel) {
            if let Some(meta) = ctx.stat(&rel)? {
                let real = if matches!(meta.kind, fsview::Kind::Symlink(_)) {
                    ctx.resolve(&rel)?
                } else {
                    rel.clone()
                };
                if let Some(m) = ctx.stat(&real)? {
                    if matches!(m.kind, fsview::Kind::File(_)) {
                        let p = ctx.content_path(&real)?;
                        if let Some(kind) = archive_kind(&p)? {
                            if is_tar_archive(&p, kind) {
                                let dir = view.resolve(&dest_clean, true)?;
                                entries.extend(mkdir_entries(
                                    view,
                                    &dir,
                                    req.chown.unwrap_or((0, 0)),
                                    req.mtime.created(),
                                )?);
                                entries.extend(extract_archive(&p, kind, &dir, req, &eng.scratch)?);
                                continue;
                            }
                        }
                    }
                }
            }
        }
        plain.push(s.clone());
    }
    if !plain.is_empty() {
        let sub = CopyRequest {
            sources: plain,
            ..req.clone()
        };
        entries.extend(copy::plan(ctx, &sub, view)?);
    }
    let heredocs: Vec<_> = sources
        .iter()
        .filter_map(|s| match s {
            CopySource::Heredoc(h) => Some(h),
            _ => None,
        })
        .collect();
    if !heredocs.is_empty() {
        entries.extend(heredoc_entries(req, view, &heredocs, sources.len() > 1)?);
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
