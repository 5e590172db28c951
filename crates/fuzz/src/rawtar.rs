//! A tar writer that writes what it is told: names with `..`, absolute names, links
//! anywhere, any type byte. The `tar` crate's builder refuses such names, and hostile
//! seeds need them.

use crate::tarfix::set_checksum;

/// Tar entry type bytes.
pub mod kind {
    /// A regular file.
    pub const FILE: u8 = b'0';
    /// A hard link.
    pub const HARDLINK: u8 = b'1';
    /// A symbolic link.
    pub const SYMLINK: u8 = b'2';
    /// A character device.
    pub const CHAR: u8 = b'3';
    /// A directory.
    pub const DIR: u8 = b'5';
    /// A FIFO.
    pub const FIFO: u8 = b'6';
    /// A PAX extended header for the next entry.
    pub const PAX: u8 = b'x';
}

/// An archive being written (see the module docs).
#[derive(Debug, Default)]
pub struct RawTar {
    out: Vec<u8>,
}

impl RawTar {
    /// An empty archive.
    pub fn new() -> RawTar {
        RawTar::default()
    }

    /// Append one entry: a ustar header (the name split into prefix and name when it
    /// is longer than 100 bytes) and the data, padded.
    pub fn entry(
        &mut self,
        kind: u8,
        name: &[u8],
        link: &[u8],
        mode: u32,
        data: &[u8],
    ) -> &mut Self {
        let mut h = [0u8; 512];
        let (prefix, short) = if name.len() > 100 {
            let cut = name.len() - 100;
            let at = name[cut..]
                .iter()
                .position(|&b| b == b'/')
                .map(|i| cut + i)
                .unwrap_or(cut);
            (&name[..at.min(155)], &name[(at + 1).min(name.len())..])
        } else {
            (&b""[..], name)
        };
        put(&mut h[0..100], short);
        put(&mut h[100..108], format!("{mode:07o}").as_bytes());
        put(&mut h[108..116], b"0000000");
        put(&mut h[116..124], b"0000000");
        put(&mut h[124..136], format!("{:011o}", data.len()).as_bytes());
        put(&mut h[136..148], b"00000000000");
        h[156] = kind;
        put(&mut h[157..257], link);
        put(&mut h[257..263], b"ustar\0");
        put(&mut h[263..265], b"00");
        put(&mut h[345..500], prefix);
        set_checksum(&mut h);
        self.out.extend_from_slice(&h);
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    /// A PAX header with `records` (key, value) for the entry that follows.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in records {
            // "LEN KEY=VALUE\n", LEN counting itself.
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self.entry(kind::PAX, b"PaxHeader", b"", 0o644, &body)
    }

    /// The archive with its two end blocks.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.out);
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}
