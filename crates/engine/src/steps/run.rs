//! RUN: executes a command in the rootless sandbox and turns its changes into a layer.
//!
//! Lower directories (one per layer, in overlayfs format) are cached by diff ID under
//! `CACHE/lower/<id-mode>/`, so a base is unpacked once across builds; the upper
//! directory of a finished RUN *is* the lower directory of its layer, so it is moved into
//! that cache instead of being unpacked again for the next RUN.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use hoist_dockerfile::{Instruction, InstructionKind, MountType, Network, Sharing, ShellOrExec};
use hoist_sandbox::{CacheSharing, MountSpec, RunSpec, Sandbox, SandboxConfig, SecretSource};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::execute::{CopyFrom, StepCx};
use crate::history;
use crate::layers::LayerRef;
use crate::progress::Event;
use crate::stage::StageState;
use crate::user;

/// The sandbox of a build, created on the first RUN.
pub(crate) fn sandbox<'a>(
    cell: &'a OnceLock<std::result::Result<Sandbox, String>>,
    cache: &Path,
) -> Result<&'a Sandbox> {
    let r = cell.get_or_init(|| {
        let sb = Sandbox::new(SandboxConfig::new(cache.join("sandbox")))
            .map_err(|e| hoist_image::chain_text(&e))?;
        if let Err(e) = sb.remove_stale() {
            tracing::warn!("could not remove stale sandbox directories: {e}");
        }
        Ok(sb)
    });
    r.as_ref().map_err(|e| {
        Error::Unsupported(format!(
            "RUN needs the sandbox, which cannot start here: {e}\n{}",
            hoist_sandbox::capabilities().explain()
        ))
    })
}

fn lower_root(eng: &Engine<'_>, sb: &Sandbox) -> PathBuf {
    let mode = match sb.id_mode() {
        hoist_sandbox::IdMode::Root { .. } => "root".to_string(),
        other => format!("{other:?}")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_lowercase(),
    };
    let uid = hoist_sandbox::capabilities().uid;
    eng.opts
        .cache_dir
        .join("lower")
        .join(format!("{mode}-{uid}"))
}

/// Make sure every layer of `layers` is unpacked as a lower dir; returns them bottom first.
fn lower_dirs(eng: &Engine<'_>, sb: &Sandbox, layers: &[LayerRef]) -> Result<Vec<PathBuf>> {
    let root = lower_root(eng, sb);
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let mut out = Vec::new();
    // The merged metadata of the layers below the current one: a layer whose paths go
    // through their symlinks gets those first (see `lowerprep`).
    let mut below = crate::fsview::FsView::new();
    for (i, l) in layers.iter().enumerate() {
        let index = crate::layers::layer_index_at(&eng.store, l, Some(i), &eng.index_dir)?;
        let prep = crate::lowerprep::plan(&below, &index);
        below.add_layer_index(&index);
        let dir = if prep.is_empty() {
            root.join(l.diff_id.hex())
        } else {
            tracing::debug!(
                layer = i,
                links = prep.len(),
                "lower dir written through the symlinks below it"
            );
            root.join(format!(
                "{}-{}",
                l.diff_id.hex(),
                crate::lowerprep::plan_id(&prep)
            ))
        };
        if !dir.is_dir() {
            eng.fetch_layers(std::slice::from_ref(l))?;
            let tmp = root.join(format!(
                ".tmp-{}-{}-{}",
                std::process::id(),
                unique(),
                l.diff_id.hex()
            ));
            if tmp.exists() {
                sb.remove_tree(&tmp).map_err(sandbox_err)?;
            }
            std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
            if let Err(e) = crate::lowerprep::apply(&tmp, &prep) {
                crate::cleanup::remove_or_warn(&tmp, sb.remove_tree(&tmp));
                return Err(e);
            }
            let blob = eng.store.path(&l.desc.digest);
            // Checked against the diff ID while unpacked: a lower dir is shared by
            // every build that names this diff ID.
            let check = hoist_sandbox::UnpackCheck {
                index: Some(i),
                diff_id: Some(l.diff_id.clone()),
                max_size: Some(hoist_image::layer::default_max_layer_size()),
            };
            if let Err(e) = sb.unpack_layer(&blob, &l.desc.media_type, &tmp, &check) {
                crate::cleanup::remove_or_warn(&tmp, sb.remove_tree(&tmp));
                return Err(sandbox_err(e));
            }
            if let Err(e) = std::fs::rename(&tmp, &dir) {
                if !dir.is_dir() {
                    crate::cleanup::remove_or_warn(&tmp, sb.remove_tree(&tmp));
                    return Err(Error::io(&dir, e));
                }
                // Another build unpacked it first.
                crate::cleanup::remove_or_warn(&tmp, sb.remove_tree(&tmp));
            }
        }
        crate::gc::mark_used(&eng.opts.cache_dir, &dir);
        out.push(dir);
    }
    Ok(out)
}

fn sandbox_err(e: hoist_sandbox::Error) -> Error {
    Error::Unsupported(format!("sandbox: {e}"))
}

/// The argv of a RUN and the extra mounts heredocs need, as BuildKit builds them.
fn command_args(
    eng: &Engine<'_>,
    state: &StageState,
    cmd: &ShellOrExec,
    heredocs: &[hoist_dockerfile::Heredoc],
) -> Result<(Vec<String>, Vec<MountSpec>)> {
    let shell = state_shell(state);
    match cmd {
        ShellOrExec::Exec(a) => Ok((a.clone(), Vec::new())),
        ShellOrExec::Shell(s) if heredocs.is_empty() => {
            let mut v = shell;
            v.push(s.clone());
            Ok((v, Vec::new()))
        }
        ShellOrExec::Shell(s) => {
            let single = heredocs.len() == 1 && is_single_heredoc_command(s);
            if single {
                let h = &heredocs[0];
                let data = h.effective_content();
                if data.starts_with("#!") {
                    // A script with a shebang: mount it and run it directly.
                    let dir = eng.scratch.join(format!("heredoc-{}", unique()));
                    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                    let file = dir.join(&h.name);
                    std::fs::write(&file, data.as_bytes()).map_err(|e| Error::io(&file, e))?;
                    set_mode(&file, 0o755)?;
                    set_mode(&dir, 0o755)?;
                    let target = "/dev/pipes".to_string();
                    return Ok((
                        vec![format!("{target}/{}", h.name)],
                        vec![MountSpec::Bind {
                            src: dir,
                            target,
                            readonly: true,
                        }],
                    ));
                }
                let mut v = shell;
                v.push(data);
                return Ok((v, Vec::new()));
            }
            // Several heredocs (or a command around one): hand the shell the whole text.
            let mut text = s.clone();
            for h in heredocs {
                text.push('\n');
                text.push_str(&h.content);
                text.push_str(&h.name);
            }
            let mut v = shell;
            v.push(text);
            Ok((v, Vec::new()))
        }
    }
}

fn is_single_heredoc_command(s: &str) -> bool {
    // `<<EOF`, `<<-EOF`, `<<"EOF"` alone on the command line.
    let t = s.trim();
    t.starts_with("<<") && !t.contains(char::is_whitespace)
}

fn unique() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(|e| Error::io(p, e))
}

fn state_shell(state: &StageState) -> Vec<String> {
    state
        .config
        .config
        .as_ref()
        .and_then(|c| c.shell.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

/// The owner a cache mount starts with, as BuildKit's `setCacheUIDGID` makes it: when
/// any of `uid=`, `gid=`, `mode=` is given (and no `source=` subpath), the cache is
/// seeded from a `mkdir /cache` owned `uid:gid` (default 0:0) with `mode` (default
/// 0755). `None`: a plain empty cache (root-owned, 0755).
fn cache_owner(
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
    source: Option<&str>,
) -> Option<hoist_sandbox::CacheOwner> {
    let subpath = source.is_some_and(|s| !crate::copy::clean_rel(s).is_empty());
    if subpath || (uid.is_none() && gid.is_none() && mode.is_none()) {
        return None;
    }
    Some(hoist_sandbox::CacheOwner {
        uid: uid.unwrap_or(0),
        gid: gid.unwrap_or(0),
        mode: mode.unwrap_or(0o755) & 0o777,
    })
}

/// The host directory of a cache mount. BuildKit keys a cache by its id and the ref it
/// starts from: caches seeded with another owner or mode are different caches.
fn cache_mount_dir(
    eng: &Engine<'_>,
    id: &str,
    owner: Option<&hoist_sandbox::CacheOwner>,
) -> PathBuf {
    eng.opts
        .cache_dir
        .join("mounts")
        .join(cache_dir_name(id, owner))
}

fn cache_dir_name(id: &str, owner: Option<&hoist_sandbox::CacheOwner>) -> String {
    let key = match owner {
        None => id.to_string(),
        Some(o) => format!("{id}\0{}:{}:{:o}", o.uid, o.gid, o.mode),
    };
    hoist_image::Digest::sha256(key.as_bytes()).hex()[..32].to_string()
}

/// Translate `RUN --mount` flags into sandbox mounts.
fn mounts(
    cx: &StepCx<'_, '_>,
    state: &StageState,
    instr: &Instruction,
    env: &mut Vec<String>,
) -> Result<Vec<MountSpec>> {
    let eng = cx.eng;
    let InstructionKind::Run { mounts, .. } = &instr.kind else {
        return Ok(Vec::new());
    };
    let workdir = state
        .config
        .config
        .as_ref()
        .and_then(|c| c.working_dir.clone())
        .unwrap_or_else(|| "/".into());
    let abs_target = |t: &str| -> String {
        if t.starts_with('/') {
            t.to_string()
        } else {
            format!("{}/{}", workdir.trim_end_matches('/'), t)
        }
    };
    let mut out = Vec::new();
    let mut ssh_n = 0;
    for m in mounts {
        let o = m.options.as_ref().ok_or_else(|| {
            Error::Invalid(format!("--mount={}: could not be interpreted", m.spec))
        })?;
        match o.kind {
            MountType::Bind => {
                let target = o.target.as_deref().ok_or_else(|| {
                    Error::Invalid(format!("--mount={}: target is required", m.spec))
                })?;
                let sub = crate::copy::clean_rel(o.source.as_deref().unwrap_or(""));
                // Symlinks in the source path are followed inside the source's own root
                // (as BuildKit does), never on the host: an absolute link in the context
                // or an image must not mount a host file.
                let (root, resolved) = {
                    use crate::tree::SourceTree;
                    match o.from.as_deref() {
                        None => (eng.context.root().to_path_buf(), eng.context.resolve(&sub)),
                        Some(f) => match cx.source(f)? {
                            CopyFrom::Dir(d) => {
                                let r = crate::tree::LocalContext::new(d, None)?.resolve(&sub);
                                (d.clone(), r)
                            }
                            CopyFrom::Stage(s) => {
                                let rootfs = eng.rootfs_of(s)?;
                                let r = crate::tree::StageTree::new(&s.view, rootfs.clone())
                                    .resolve(&sub);
                                (rootfs, r)
                            }
                        },
                    }
                };
                let sub = resolved.map_err(|e| {
                    Error::Invalid(format!("--mount={}: source /{sub}: {e}", m.spec))
                })?;
                // The context as the build sees it: with a .dockerignore, a filtered
                // tree (hard links; copies for a read-write mount, whose writes are
                // discarded), so ignored files are neither visible nor part of the key.
                if o.from.is_none() && eng.context.has_ignore() {
                    let view = eng.scratch.join(format!("bind-{}", unique()));
                    eng.context
                        .materialize(&sub, &view, !o.readonly)
                        .map_err(|e| {
                            Error::Invalid(format!("--mount={}: source /{sub}: {e}", m.spec))
                        })?;
                    out.push(MountSpec::Bind {
                        src: view,
                        target: abs_target(target),
                        readonly: o.readonly,
                    });
                    continue;
                }
                let src = root.join(&sub);
                if !src.exists() {
                    return Err(Error::Invalid(format!(
                        "--mount={}: source /{sub} not found",
                        m.spec
                    )));
                }
                let src = if o.readonly {
                    src
                } else {
                    // Writes to a read-write bind mount are discarded: work on a copy.
                    let copy = eng.scratch.join(format!("bind-{}", unique()));
                    let st = std::process::Command::new("cp")
                        .arg("-a")
                        .arg(&src)
                        .arg(&copy)
                        .status()
                        .map_err(|e| Error::io(&src, e))?;
                    if !st.success() {
                        return Err(Error::Invalid(format!(
                            "--mount={}: copying the source failed",
                            m.spec
                        )));
                    }
                    copy
                };
                out.push(MountSpec::Bind {
                    src,
                    target: abs_target(target),
                    readonly: o.readonly,
                });
            }
            MountType::Cache => {
                let target = o.target.as_deref().ok_or_else(|| {
                    Error::Invalid(format!("--mount={}: target is required", m.spec))
                })?;
                let target = abs_target(target);
                let id = o.id.clone().unwrap_or_else(|| target.clone());
                let owner = cache_owner(o.uid, o.gid, o.mode, o.source.as_deref());
                let dir = cache_mount_dir(eng, &id, owner.as_ref());
                if !dir.exists() {
                    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                    set_mode(&dir, 0o755)?;
                }
                crate::gc::mark_used(&eng.opts.cache_dir, &dir);
                let sharing = match o.sharing.unwrap_or(Sharing::Shared) {
                    Sharing::Shared => CacheSharing::Shared,
                    Sharing::Private => CacheSharing::Private,
                    Sharing::Locked => CacheSharing::Locked,
                };
                out.push(MountSpec::Cache {
                    src: dir,
                    target,
                    sharing,
                    readonly: o.readonly,
                    owner,
                });
            }
            MountType::Tmpfs => {
                let target = o.target.as_deref().ok_or_else(|| {
                    Error::Invalid(format!("--mount={}: target is required", m.spec))
                })?;
                out.push(MountSpec::Tmpfs {
                    target: abs_target(target),
                    size: o.size.filter(|s| *s > 0).map(|s| s as u64),
                });
            }
            MountType::Secret => {
                let id = o
                    .id
                    .clone()
                    .or_else(|| {
                        o.target
                            .as_deref()
                            .map(|t| t.rsplit('/').next().unwrap_or(t).to_string())
                    })
                    .ok_or_else(|| {
                        Error::Invalid(format!("--mount={}: secret needs id= or target=", m.spec))
                    })?;
                let secret = eng.opts.secrets.iter().find(|s| s.id == id);
                let Some(secret) = secret else {
                    if o.required {
                        return Err(Error::Invalid(format!(
                            "secret {id} is required but was not given (--secret id={id},src=FILE)"
                        )));
                    }
                    continue;
                };
                if let Some(var) = &o.env {
                    out.push(MountSpec::SecretEnv {
                        name: var.clone(),
                        value: String::from_utf8_lossy(&secret.value).into_owned(),
                    });
                    if o.target.is_none() {
                        continue;
                    }
                }
                let target = o
                    .target
                    .clone()
                    .map(|t| abs_target(&t))
                    .unwrap_or_else(|| format!("/run/secrets/{id}"));
                out.push(MountSpec::SecretFile {
                    source: SecretSource::Bytes(secret.value.clone()),
                    target,
                    mode: o.mode.unwrap_or(0o400),
                    uid: o.uid.unwrap_or(0),
                    gid: o.gid.unwrap_or(0),
                });
            }
            MountType::Ssh => {
                let id = o.id.clone().unwrap_or_else(|| "default".into());
                let Some(sock) = eng.opts.ssh.get(&id) else {
                    if o.required {
                        return Err(Error::Invalid(format!(
                            "ssh agent {id} is required but was not given (--ssh {id}=SOCKET)"
                        )));
                    }
                    continue;
                };
                let target = o.target.clone().unwrap_or_else(|| {
                    ssh_n += 1;
                    format!("/run/buildkit/ssh_agent.{}", ssh_n - 1)
                });
                if !env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK=")) {
                    env.push(format!("SSH_AUTH_SOCK={target}"));
                }
                out.push(MountSpec::Ssh {
                    sock: sock.clone(),
                    target,
                });
            }
        }
    }
    Ok(out)
}

/// Execute a RUN instruction; `Ok(true)` when its result came from the cache.
pub(crate) fn dispatch_run(cx: &StepCx<'_, '_>, state: &mut StageState) -> Result<bool> {
    let eng = cx.eng;
    let instr = &cx.step.instr;
    let step = cx.step.id;
    let InstructionKind::Run {
        cmd,
        heredocs,
        network,
        ..
    } = &instr.kind
    else {
        return Err(Error::Invalid("not a RUN (a bug in the dispatcher)".into()));
    };
    let cache_dir = eng.opts.cache_dir.clone();
    let sb_cell = eng.sandbox.clone();
    let sb = sandbox(&sb_cell, &cache_dir)?;

    // Identity.
    let user_spec = state
        .config
        .config
        .as_ref()
        .and_then(|c| c.user.clone())
        .unwrap_or_default();
    let (passwd, group) = eng.passwd_group(state)?;
    let who = user::resolve_exec_user(&user_spec, &passwd, &group)
        .map_err(|e| Error::Invalid(e.to_string()))?;

    let (argv, mut extra_mounts) = command_args(eng, state, cmd, heredocs)?;
    let mut env = cx.step.run_env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", who.home));
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, crate::engine::DEFAULT_PATH_ENV.to_string());
    }
    let mut mounts = mounts(cx, state, instr, &mut env)?;
    mounts.append(&mut extra_mounts);

    let net = match network.map(|n| match n {
        Network::None => "none",
        Network::Host => "host",
        Network::Default => "default",
    }) {
        Some(n) => n.to_string(),
        None => eng.opts.network.clone().unwrap_or_else(|| "default".into()),
    };
    let network = match net.as_str() {
        "none" => hoist_sandbox::Network::None,
        "host" | "default" => hoist_sandbox::Network::Host,
        other => {
            return Err(Error::Invalid(format!(
                "unknown network {other:?} (expected default, none or host)"
            )))
        }
    };

    let workdir = state
        .config
        .config
        .as_ref()
        .and_then(|c| c.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    let mut spec = RunSpec {
        lower_dirs: Vec::new(),
        upper_dir: PathBuf::new(),
        work_dir: PathBuf::new(),
        argv: argv.clone(),
        env,
        cwd: workdir,
        uid: who.uid,
        gid: who.gid,
        groups: who.groups.clone(),
        mounts,
        network,
        hostname: "buildkitsandbox".into(),
        extra_hosts: eng.opts.add_hosts.clone(),
    };
    // The step cache: everything that determines the result, secrets' values excluded.
    let key = run_key(eng, state, instr, &spec)?;
    if let Some(made) = eng.cache_hit(state, &key)? {
        let text = run_history(&argv, &cx.step.history_args);
        eng.history(state, text, !made);
        return Ok(true);
    }
    let platform = state.config.platform();
    if let Err(why) = can_execute(&platform, &hoist_image::Platform::host()) {
        return Err(Error::Invalid(why));
    }
    spec.lower_dirs = crate::compat::dedup_lowers(lower_dirs(eng, sb, &state.layers)?);
    let dirs = sb.create_run_dirs().map_err(sandbox_err)?;
    spec.upper_dir = dirs.upper.clone();
    spec.work_dir = dirs.work.clone();
    let progress = eng.progress;
    let started = Instant::now();
    let status = sb.run(&spec, &mut |_stream, data| {
        progress.event(Event::Log { id: step, data })
    });
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            crate::cleanup::remove_or_warn(&dirs.base, sb.remove_tree(&dirs.base));
            return Err(sandbox_err(e));
        }
    };
    if !status.success() {
        crate::cleanup::remove_or_warn(&dirs.base, sb.remove_tree(&dirs.base));
        let shown = argv.join(" ");
        let shown = crate::error::shown(&shown);
        return Err(Error::Invalid(format!(
            "process \"{shown}\" did not complete successfully: {status}"
        )));
    }
    tracing::debug!(elapsed = ?started.elapsed(), "RUN finished");

    // The change becomes a layer. Reproducible by default: file times are clamped to
    // SOURCE_DATE_EPOCH, or to 0 without it (as COPY writes them), so the same command
    // producing the same files gives the same layer on every run.
    let mut opts = eng.write_options();
    opts.source_date_epoch = Some(opts.source_date_epoch.unwrap_or(0));
    let d = match sb.diff_layer(&dirs.upper, eng.store.root(), &opts) {
        Ok(d) => d,
        Err(e) => {
            crate::cleanup::remove_or_warn(&dirs.base, sb.remove_tree(&dirs.base));
            return Err(sandbox_err(e));
        }
    };
    let history_text = run_history(&argv, &cx.step.history_args);
    // BuildKit keeps a layer even when nothing changed (an empty tar).
    let empty = !crate::compat::makes_layer(&instr.kind, "");
    if empty {
        crate::cleanup::remove_or_warn(&dirs.base, sb.remove_tree(&dirs.base));
    } else {
        let layer = LayerRef::built(d.descriptor(), d.diff_id.clone());
        crate::variants::record(&eng.opts.cache_dir, &layer, &eng.encoding);
        // Keep the upper dir as this layer's lower dir for the next RUN.
        let lower = lower_root(eng, sb).join(layer.diff_id.hex());
        if !lower.exists() {
            if let Err(e) = std::fs::rename(&dirs.upper, &lower) {
                // Another build may have put it there meanwhile; otherwise the next
                // RUN unpacks the layer again.
                if !lower.exists() {
                    tracing::warn!(
                        from = %dirs.upper.display(),
                        to = %lower.display(),
                        "RUN's upper dir not kept as its lower dir (it will be unpacked again): {e}"
                    );
                }
            }
        }
        if lower.exists() {
            crate::gc::mark_used(&eng.opts.cache_dir, &lower);
        }
        crate::cleanup::remove_or_warn(&dirs.base, sb.remove_tree(&dirs.base));
        let index = crate::layers::layer_index(&eng.store, &layer, &eng.index_dir)?;
        state.view.add_layer_index(&index);
        eng.push_layer(state, layer);
    }
    eng.cache_put(state, &key, !empty);
    eng.history(state, history_text, empty);
    Ok(false)
}

/// Whether this host can run `platform`'s programs: its own architecture, one its CPU
/// runs natively (386 on amd64, arm on arm64), or one an emulator is registered for in
/// binfmt_misc (qemu-user-static). Otherwise the reason and what to do, rather than the
/// "exec format error" the command would fail with.
pub(crate) fn can_execute(
    platform: &hoist_image::Platform,
    host: &hoist_image::Platform,
) -> std::result::Result<(), String> {
    if platform.os.is_empty() || platform.architecture.is_empty() {
        return Ok(());
    }
    let arch = platform.architecture.as_str();
    let native = arch == host.architecture
        || matches!(
            (host.architecture.as_str(), arch),
            ("amd64", "386") | ("arm64", "arm")
        );
    if platform.os == host.os && native {
        return Ok(());
    }
    let qemu = match arch {
        "amd64" => "x86_64",
        "386" => "i386",
        "arm64" => "aarch64",
        "arm" => "arm",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64le" => "mips64el",
        "mips64" => "mips64",
        "loong64" => "loongarch64",
        other => other,
    };
    if platform.os == host.os && binfmt_handler(qemu) {
        return Ok(());
    }
    let p = platform.to_string();
    Err(format!(
        "RUN needs to execute {p} programs, and this {host} machine cannot: no emulator \
         for {qemu} is registered in /proc/sys/fs/binfmt_misc. Install one (Debian: \
         apt-get install qemu-user-static, which registers qemu-{qemu}), or run this stage \
         on the build platform (FROM --platform=$BUILDPLATFORM … and cross-compile, \
         copying the result into the {p} stage)"
    ))
}

/// Whether binfmt_misc has an enabled handler whose name mentions `qemu_arch`.
fn binfmt_handler(qemu_arch: &str) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc/sys/fs/binfmt_misc") else {
        return false;
    };
    rd.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().to_string();
        (name == format!("qemu-{qemu_arch}") || name == qemu_arch)
            && std::fs::read_to_string(e.path())
                .map(|t| t.lines().next() == Some("enabled"))
                .unwrap_or(false)
    })
}

fn run_history(argv: &[String], history_args: &[String]) -> String {
    let args: Vec<(String, String)> = history_args
        .iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    history::run(argv, &args)
}

/// The key of a RUN: the chain so far, the instruction, and as inputs the process
/// (argv, the environment it sees, cwd, identity, network, hosts) and its mounts:
/// bind-mount sources by content, cache mounts by id/target only (their contents are
/// not inputs), secrets and ssh agents by name only (never their values).
fn run_key(
    eng: &Engine<'_>,
    state: &StageState,
    instr: &Instruction,
    spec: &RunSpec,
) -> Result<crate::key::Key> {
    use crate::key::Input;
    use serde_json::json;
    let mut inputs = vec![Input::Value(
        "process",
        json!({
            "argv": spec.argv,
            "env": spec.env,
            "cwd": spec.cwd,
            "uid": spec.uid,
            "gid": spec.gid,
            "groups": spec.groups,
            "network": format!("{:?}", spec.network),
            "hosts": spec.extra_hosts,
        }),
    )];
    for m in &spec.mounts {
        let v = match m {
            MountSpec::Bind {
                src,
                target,
                readonly,
            } => {
                inputs.push(Input::Value(
                    "bind",
                    json!({"target": target, "readonly": readonly}),
                ));
                Input::Tree(src)
            }
            MountSpec::Cache {
                target,
                sharing,
                readonly,
                owner,
                ..
            } => Input::Value(
                "cache",
                json!({"target": target, "sharing": format!("{sharing:?}"), "readonly": readonly,
                       "owner": owner.map(|o| [o.uid, o.gid, o.mode])}),
            ),
            MountSpec::Tmpfs { target, size } => {
                Input::Value("tmpfs", json!({"target": target, "size": size}))
            }
            MountSpec::SecretFile {
                target,
                mode,
                uid,
                gid,
                ..
            } => Input::Value(
                "secret",
                json!({"target": target, "mode": mode, "uid": uid, "gid": gid}),
            ),
            MountSpec::SecretEnv { name, .. } => Input::Value("secret-env", json!(name)),
            MountSpec::Ssh { target, .. } => Input::Value("ssh", json!(target)),
            // Lower dirs are named by diff ID: their names are their content.
            MountSpec::Layers { lowers, target } => Input::Value(
                "layers",
                json!({"target": target, "lowers": lowers.iter().map(|l| l.to_string_lossy()).collect::<Vec<_>>()}),
            ),
            // A new kind of mount must say what it reads before it can be cached.
            _ => {
                return Err(Error::Invalid(
                    "a RUN mount of a kind the step cache cannot key (a bug)".into(),
                ))
            }
        };
        inputs.push(v);
    }
    let platform = state.config.platform();
    crate::key::step_key(
        &state.key,
        &instr.kind,
        &eng.settings(&platform),
        &inputs,
        &eng.hasher,
    )
}

#[cfg(test)]
mod tests {
    use super::can_execute;
    use hoist_image::Platform;

    #[test]
    fn foreign_platforms_need_an_emulator() {
        let p = |s: &str| Platform::parse(s).unwrap();
        let amd64 = p("linux/amd64");
        assert!(can_execute(&p("linux/amd64"), &amd64).is_ok());
        assert!(can_execute(&p("linux/386"), &amd64).is_ok());
        assert!(can_execute(&p("linux/arm/v7"), &p("linux/arm64")).is_ok());
        // A made-up architecture no binfmt handler can be registered for.
        let err = can_execute(&p("linux/nosucharch"), &amd64).unwrap_err();
        assert!(err.contains("linux/nosucharch"), "{err}");
        assert!(err.contains("qemu-user-static"), "{err}");
        assert!(err.contains("BUILDPLATFORM"), "{err}");
        let err = can_execute(&p("windows/amd64"), &amd64).unwrap_err();
        assert!(err.contains("windows/amd64"), "{err}");
    }
}
