//! Deterministic tar headers (USTAR, with PAX extended headers when needed).
//!
//! Each entry is written as, in 512-byte blocks:
//!
//! ```text
//! [ PAX 'x' header ][ PAX records, padded ]   only when a field does not fit USTAR
//! [ USTAR header   ][ file data, padded   ]   data only for regular files
//! ...
//! [ 1024 zero bytes ]                          end of archive
//! ```
//!
//! Fields follow Go's `archive/tar` (what BuildKit and containerd produce): octal
//! numbers zero-padded with a trailing NUL, empty uname/gname, `ustar\0` + `00`
//! magic, names split into prefix/name when that fits, PAX records (`path`,
//! `linkpath`, `size`, `uid`, `gid`, `mtime`, `SCHILY.xattr.*`) sorted by key
//! otherwise.

use std::collections::BTreeMap;

/// The size of a tar block.
pub(crate) const BLOCK: usize = 512;

/// Type flags.
pub(crate) const REG: u8 = b'0';
pub(crate) const LINK: u8 = b'1';
pub(crate) const SYMLINK: u8 = b'2';
pub(crate) const CHAR: u8 = b'3';
pub(crate) const BLOCKDEV: u8 = b'4';
pub(crate) const DIR: u8 = b'5';
pub(crate) const FIFO: u8 = b'6';
const PAX: u8 = b'x';

/// The fields of one tar header, after every policy has been applied.
pub(crate) struct Header<'a> {
    /// Full name, with a trailing `/` for directories.
    pub name: &'a str,
    pub linkname: &'a str,
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    pub devmajor: u32,
    pub devminor: u32,
    pub xattrs: &'a BTreeMap<String, Vec<u8>>,
}

/// Append the header block(s) for `h` to `out` (not the file data).
pub(crate) fn encode(h: &Header<'_>, out: &mut Vec<u8>) {
    let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let (prefix, name) = match split_ustar(h.name) {
        Some(p) => p,
        None => {
            pax.insert("path".into(), h.name.as_bytes().to_vec());
            ("", h.name)
        }
    };
    if h.linkname.len() > 100 || !h.linkname.is_ascii() {
        pax.insert("linkpath".into(), h.linkname.as_bytes().to_vec());
    }
    let max7 = 0o7777777u64;
    let max11 = 0o77777777777u64;
    if h.uid > max7 {
        pax.insert("uid".into(), h.uid.to_string().into_bytes());
    }
    if h.gid > max7 {
        pax.insert("gid".into(), h.gid.to_string().into_bytes());
    }
    if h.size > max11 {
        pax.insert("size".into(), h.size.to_string().into_bytes());
    }
    let mtime = h.mtime.max(0) as u64;
    if mtime > max11 {
        pax.insert("mtime".into(), mtime.to_string().into_bytes());
    }
    for (k, v) in h.xattrs {
        pax.insert(format!("SCHILY.xattr.{k}"), v.clone());
    }

    if !pax.is_empty() {
        let mut data = Vec::new();
        for (k, v) in &pax {
            pax_record(k, v, &mut data);
        }
        let (dir, file) = match h.name.trim_end_matches('/').rsplit_once('/') {
            Some((d, f)) => (format!("{d}/"), f),
            None => (String::new(), h.name.trim_end_matches('/')),
        };
        let pax_name = format!("{dir}PaxHeaders.0/{file}");
        let pax_name = ascii_truncated(&pax_name, 100);
        let block = ustar_block(
            "",
            pax_name.trim_end_matches('/'),
            "",
            PAX,
            0,
            0,
            0,
            data.len() as u64,
            0,
            0,
            0,
        );
        out.extend_from_slice(&block);
        out.extend_from_slice(&data);
        pad(out, data.len() as u64);
    }

    let linkname = if h.linkname.len() > 100 || !h.linkname.is_ascii() {
        ascii_truncated(h.linkname, 100)
    } else {
        h.linkname.to_string()
    };
    let name = if pax.contains_key("path") {
        ascii_truncated(name, 100)
    } else {
        name.to_string()
    };
    let block = ustar_block(
        prefix,
        &name,
        &linkname,
        h.typeflag,
        h.mode & 0o7777,
        h.uid.min(max7),
        h.gid.min(max7),
        h.size.min(max11),
        mtime.min(max11),
        h.devmajor,
        h.devminor,
    );
    out.extend_from_slice(&block);
}

/// Append zero padding after `len` bytes of data so the stream is block-aligned.
pub(crate) fn pad(out: &mut Vec<u8>, len: u64) {
    let rem = (len % BLOCK as u64) as usize;
    if rem != 0 {
        out.resize(out.len() + BLOCK - rem, 0);
    }
}

/// The number of padding bytes after `len` bytes of data.
pub(crate) fn padding(len: u64) -> usize {
    let rem = (len % BLOCK as u64) as usize;
    if rem == 0 {
        0
    } else {
        BLOCK - rem
    }
}

/// Split a name into USTAR (prefix, name), or `None` when only PAX can hold it.
fn split_ustar(name: &str) -> Option<(&str, &str)> {
    if !name.is_ascii() {
        return None;
    }
    if name.len() <= 100 {
        return Some(("", name));
    }
    if name.len() > 256 {
        return None;
    }
    // The longest prefix (<= 155 bytes) that leaves a non-empty name of <= 100 bytes.
    let limit = name.len().min(156);
    let bytes = name.as_bytes();
    let i = (1..limit).rev().find(|&i| bytes[i] == b'/')?;
    let rest = &name[i + 1..];
    if rest.is_empty() || rest == "/" || rest.len() > 100 {
        return None;
    }
    Some((&name[..i], rest))
}

fn ascii_truncated(s: &str, max: usize) -> String {
    let mut t: String = s.chars().filter(|c| c.is_ascii()).collect();
    t.truncate(max);
    t
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `<len>` counts itself.
fn pax_record(key: &str, value: &[u8], out: &mut Vec<u8>) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    loop {
        let total = body + len.to_string().len();
        if total == len {
            break;
        }
        len = total;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[allow(clippy::too_many_arguments)]
fn ustar_block(
    prefix: &str,
    name: &str,
    linkname: &str,
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    devmajor: u32,
    devminor: u32,
) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    put_str(&mut b[0..100], name);
    put_octal(&mut b[100..108], mode as u64);
    put_octal(&mut b[108..116], uid);
    put_octal(&mut b[116..124], gid);
    put_octal(&mut b[124..136], size);
    put_octal(&mut b[136..148], mtime);
    b[156] = typeflag;
    put_str(&mut b[157..257], linkname);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    // uname [265..297] and gname [297..329] stay empty.
    put_octal(&mut b[329..337], devmajor as u64);
    put_octal(&mut b[337..345], devminor as u64);
    put_str(&mut b[345..500], prefix);
    b[148..156].fill(b' ');
    let sum: u64 = b.iter().map(|&x| x as u64).sum();
    put_octal(&mut b[148..155], sum);
    b
}

fn put_str(field: &mut [u8], s: &str) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
}

/// Zero-padded octal with a trailing NUL, filling the field.
fn put_octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    let s = &s.as_bytes()[s.len().saturating_sub(digits)..];
    field[..digits].copy_from_slice(s);
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut out = Vec::new();
        pax_record("path", b"a", &mut out);
        assert_eq!(out, b"9 path=a\n");
        let mut out = Vec::new();
        let v = vec![b'x'; 95];
        pax_record("path", &v, &mut out);
        assert_eq!(out.len(), 105);
        assert!(out.starts_with(b"105 path="));
        let mut out = Vec::new();
        pax_record("path", &[b'y'; 91], &mut out);
        assert_eq!(out.len(), 101);
        assert!(out.starts_with(b"101 path="));
    }

    #[test]
    fn splits_long_ascii_names() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let (p, n) = split_ustar(&long).unwrap();
        assert_eq!(p.len(), 120);
        assert_eq!(n.len(), 90);
        assert!(split_ustar(&"x".repeat(101)).is_none());
        assert!(split_ustar("é").is_none());
    }

    #[test]
    fn header_checksum_is_valid() {
        let x = BTreeMap::new();
        let mut out = Vec::new();
        encode(
            &Header {
                name: "a/b",
                linkname: "",
                typeflag: REG,
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: 3,
                mtime: 0,
                devmajor: 0,
                devminor: 0,
                xattrs: &x,
            },
            &mut out,
        );
        assert_eq!(out.len(), 512);
        let mut b = out.clone();
        b[148..156].fill(b' ');
        let sum: u64 = b.iter().map(|&x| x as u64).sum();
        assert_eq!(&out[148..156], format!("{sum:06o}\0 ").as_bytes());
        assert_eq!(&out[124..136], b"00000000003\0");
    }
}
