//! Build while pushing: with `--push` (or `type=image,push=true`), each layer of the
//! final image goes to the destination repositories as soon as the build has it in
//! the store, while the remaining steps run.
//!
//! ```text
//! step done ─▶ layer_ready(desc) ─▶ bounded queue ─▶ N upload threads ─▶ registry
//!                                                      (HEAD, else streamed upload
//!                                                       from the sealed store file)
//! export ─▶ Pusher::push: wait for the queue to drain ─▶ the ordinary push
//! ```
//!
//! The final push is the same code path as without early uploads: it `HEAD`s every
//! blob, so a layer uploaded early is not sent again, and a layer whose early upload
//! failed is retried there (an interrupted build leaves only complete blobs behind,
//! which a later push skips). Memory stays bounded: the queue holds descriptors, the
//! uploads stream from the blob files. Only layers of stages that end up in the
//! image are offered (see [`crate::execute`]), and only when the push output uses
//! the encoding the steps write (otherwise the image's layers are re-encoded first).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use hoist_image::{BlobStore, Descriptor, Digest};
use hoist_registry::{BlobOutcome, Client, Reference};

use crate::output::{Output, OutputSpec};
use crate::variants::Encoding;

/// Layers queued at most before [`EarlyPush::offer`] waits for an upload thread.
const QUEUE: usize = 256;

/// The repositories a build pushes to whose image keeps the steps' layer encoding:
/// the ones early uploads may go to (one reference per repository).
pub fn early_destinations(outputs: &[OutputSpec], tags: &[String]) -> Vec<String> {
    let primary = Encoding::primary(outputs);
    let mut out: Vec<String> = Vec::new();
    for o in outputs {
        let Output::Image { names, push: true } = &o.output else {
            continue;
        };
        let e = Encoding::of(o);
        if (e.compression, e.level) != (primary.compression, primary.level) {
            continue;
        }
        let names = if names.is_empty() { tags } else { names };
        for n in names {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
    }
    out
}

struct Shared {
    cancelled: AtomicBool,
    uploaded: AtomicUsize,
    uploaded_bytes: std::sync::atomic::AtomicU64,
    present: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

/// Uploads offered layers in the background (see the module docs).
pub struct EarlyPush {
    tx: Mutex<Option<SyncSender<(Descriptor, PathBuf)>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    seen: Mutex<HashSet<Digest>>,
    shared: Arc<Shared>,
}

/// What the early uploads did, reported when they are drained.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EarlyReport {
    /// Layer uploads done during the build (per repository).
    pub uploaded: usize,
    /// Bytes of those uploads.
    pub uploaded_bytes: u64,
    /// Layers the registry already had.
    pub present: usize,
    /// Uploads that failed (the final push retries them).
    pub failures: Vec<String>,
}

impl EarlyPush {
    /// Start `threads` upload threads pushing to `dests` (one per repository).
    pub fn start(client: Client, dests: Vec<Reference>, threads: usize) -> EarlyPush {
        let (tx, rx) = mpsc::sync_channel::<(Descriptor, PathBuf)>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let shared = Arc::new(Shared {
            cancelled: AtomicBool::new(false),
            uploaded: AtomicUsize::new(0),
            uploaded_bytes: Default::default(),
            present: AtomicUsize::new(0),
            failures: Mutex::new(Vec::new()),
        });
        let dests = Arc::new(dests);
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let (rx, shared, dests, client) = (
                Arc::clone(&rx),
                Arc::clone(&shared),
                Arc::clone(&dests),
                client.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("hoist-early-push-{i}"))
                .spawn(move || loop {
                    let job = {
                        let Ok(guard) = rx.lock() else { return };
                        match guard.recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        }
                    };
                    if shared.cancelled.load(Ordering::SeqCst) || crate::interrupted() {
                        continue;
                    }
                    let (desc, file) = job;
                    for dest in dests.iter() {
                        let open = || -> hoist_image::Result<Box<dyn std::io::Read + Send>> {
                            let f = std::fs::File::open(&file)
                                .map_err(|e| hoist_image::Error::io(&file, e))?;
                            Ok(Box::new(f))
                        };
                        match client.upload_blob(dest, &desc, None, &open) {
                            Ok(BlobOutcome::Uploaded(_)) => {
                                shared.uploaded.fetch_add(1, Ordering::Relaxed);
                                shared
                                    .uploaded_bytes
                                    .fetch_add(desc.size, Ordering::Relaxed);
                            }
                            Ok(_) => {
                                shared.present.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                let msg = format!(
                                    "{} to {dest}: {}",
                                    desc.digest,
                                    hoist_image::chain_text(&e)
                                );
                                tracing::debug!("early upload failed: {msg}");
                                if let Ok(mut f) = shared.failures.lock() {
                                    f.push(msg);
                                }
                            }
                        }
                    }
                });
            match spawned {
                Ok(h) => workers.push(h),
                Err(e) => tracing::warn!("cannot start an upload thread: {e}"),
            }
        }
        EarlyPush {
            tx: Mutex::new(Some(tx)),
            workers: Mutex::new(workers),
            seen: Mutex::new(HashSet::new()),
            shared,
        }
    }

    /// Queue the layer `desc` of `store` for upload (once per digest; waits only when
    /// [`QUEUE`] layers are already waiting).
    pub fn offer(&self, store: &BlobStore, desc: &Descriptor) {
        if let Ok(mut seen) = self.seen.lock() {
            if !seen.insert(desc.digest.clone()) {
                return;
            }
        }
        let file = store.path(&desc.digest);
        if let Ok(guard) = self.tx.lock() {
            if let Some(tx) = guard.as_ref() {
                let _ = tx.send((desc.clone(), file));
            }
        }
    }

    /// Stop taking layers and wait for the queued uploads to finish.
    pub fn drain(&self) -> EarlyReport {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let workers = match self.workers.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(_) => Vec::new(),
        };
        for w in workers {
            let _ = w.join();
        }
        EarlyReport {
            uploaded: self.shared.uploaded.load(Ordering::Relaxed),
            uploaded_bytes: self.shared.uploaded_bytes.load(Ordering::Relaxed),
            present: self.shared.present.load(Ordering::Relaxed),
            failures: self
                .shared
                .failures
                .lock()
                .map(|f| f.clone())
                .unwrap_or_default(),
        }
    }
}

impl Drop for EarlyPush {
    /// A build that fails drops the queue: what is queued is not uploaded, uploads in
    /// flight finish (complete blobs only).
    fn drop(&mut self) {
        self.shared.cancelled.store(true, Ordering::SeqCst);
        self.drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(list: &[&str]) -> Vec<OutputSpec> {
        list.iter().map(|s| OutputSpec::parse(s).unwrap()).collect()
    }

    #[test]
    fn destinations_are_pushes_in_the_primary_encoding() {
        let tags = vec!["r/a:1".to_string()];
        // --push alone: the tags.
        let one = specs(&["type=image,push=true"]);
        assert_eq!(early_destinations(&one, &tags), tags);
        // A push whose encoding differs from the first output's: none.
        let zstd = specs(&["type=oci,dest=x", "type=image,push=true,compression=zstd"]);
        assert!(early_destinations(&zstd, &tags).is_empty());
        let gzip = specs(&["type=oci,dest=x", "type=image,push=true,compression=gzip"]);
        assert_eq!(early_destinations(&gzip, &tags), tags);
        // Names of the output win over the tags; not pushed: none.
        let named = specs(&["type=image,name=r/b:2,push=true"]);
        assert_eq!(early_destinations(&named, &tags), vec!["r/b:2".to_string()]);
        let kept = specs(&["type=image,name=r/b:2"]);
        assert!(early_destinations(&kept, &tags).is_empty());
    }
}
