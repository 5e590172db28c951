//! Helpers shared by the layer tests: tree snapshots and raw tar crafting.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use hoist_image::Digest;

/// Whether the tests run as root (chown, mknod, `security.capability`).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Describe every path under `root` (not `root` itself): kind, mode, owner,
/// mtime, content digest, link target, device numbers, capability, hard-link group.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    walk(root, "", &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    rel: &str,
    out: &mut BTreeMap<String, String>,
    inodes: &mut HashMap<(u64, u64), String>,
) {
    let dir = root.join(rel);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for name in names {
        let rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let p = root.join(&rel);
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let mut d = format!(
            "mode={:o} owner={}:{} mtime={}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid(),
            m.mtime()
        );
        if ft.is_dir() {
            d = format!("dir {d}");
        } else if ft.is_symlink() {
            d = format!("symlink -> {} {d}", fs::read_link(&p).unwrap().display());
        } else if ft.is_file() {
            d = format!(
                "file {} size={} {d}",
                Digest::sha256(&fs::read(&p).unwrap()),
                m.len()
            );
        } else if ft.is_char_device() || ft.is_block_device() {
            d = format!(
                "{} {}:{} {d}",
                if ft.is_char_device() { "char" } else { "block" },
                rustix::fs::major(m.rdev()),
                rustix::fs::minor(m.rdev())
            );
        } else if ft.is_fifo() {
            d = format!("fifo {d}");
        }
        if !ft.is_dir() && m.nlink() > 1 {
            let first = inodes.entry((m.dev(), m.ino())).or_insert(rel.clone());
            d = format!("{d} links-with={first}");
        }
        if !ft.is_symlink() {
            let mut buf = [0u8; 256];
            if let Ok(n) = rustix::fs::lgetxattr(&p, "security.capability", &mut buf[..]) {
                d = format!("{d} cap={}", hex::encode(&buf[..n]));
            }
        }
        out.insert(rel.clone(), d);
        if ft.is_dir() {
            walk(root, &rel, out, inodes);
        }
    }
}

/// One raw USTAR header (plus data, padded), crafted byte by byte.
pub fn raw_entry(name: &str, typeflag: u8, linkname: &str, data: &[u8]) -> Vec<u8> {
    let mut b = [0u8; 512];
    b[..name.len()].copy_from_slice(name.as_bytes());
    let mode: &[u8] = if typeflag == b'5' {
        b"0000755\0"
    } else {
        b"0000644\0"
    };
    b[100..108].copy_from_slice(mode);
    b[108..116].copy_from_slice(b"0000000\0");
    b[116..124].copy_from_slice(b"0000000\0");
    b[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    b[136..148].copy_from_slice(b"00000000000\0");
    b[156] = typeflag;
    b[157..157 + linkname.len()].copy_from_slice(linkname.as_bytes());
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| x as u32).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut v = b.to_vec();
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

/// A whole archive from raw entries, with the end-of-archive blocks.
pub fn raw_tar(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut v: Vec<u8> = entries.concat();
    v.extend_from_slice(&[0u8; 1024]);
    v
}
