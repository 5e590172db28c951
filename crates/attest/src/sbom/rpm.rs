//! RPM: the SQLite package database (`rpmdb.sqlite`, rpm ≥ 4.16: Fedora ≥ 33, RHEL 9, …).
//!
//! Its `Packages` table holds one RPM header per row (`hnum`, `blob`). A header blob is
//! `il` (u32, big-endian: index entries), `dl` (u32: data bytes), `il` entries of
//! 16 bytes (tag, type, offset, count) and the data; an optional 8-byte header magic
//! may precede it. Every size and offset is checked before it is used: a hostile blob
//! gives an error, never a panic or a huge allocation. Berkeley DB and NDB databases
//! are not read (the caller says so in the document).

use std::io::Write;

use super::{Origin, Package};

/// RPM's own bound on index entries in a header.
const MAX_ENTRIES: u32 = 0xffff;
/// RPM's own bound on the data of a header (256 MiB).
const MAX_DATA: u32 = 0x0fff_ffff;
/// At most this many rows are read.
const MAX_ROWS: usize = 1_000_000;
const MAGIC: [u8; 8] = [0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];

/// Tag NAME (1000).
pub const TAG_NAME: u32 = 1000;
/// Tag VERSION (1001).
pub const TAG_VERSION: u32 = 1001;
/// Tag RELEASE (1002).
pub const TAG_RELEASE: u32 = 1002;
/// Tag EPOCH (1003).
pub const TAG_EPOCH: u32 = 1003;
/// Tag VENDOR (1011).
pub const TAG_VENDOR: u32 = 1011;
/// Tag LICENSE (1014).
pub const TAG_LICENSE: u32 = 1014;
/// Tag ARCH (1022).
pub const TAG_ARCH: u32 = 1022;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_I18NSTRING: u32 = 9;

/// The fields of one header the SBOM uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// NAME (1000).
    pub name: String,
    /// VERSION (1001).
    pub version: String,
    /// RELEASE (1002).
    pub release: String,
    /// EPOCH (1003), when the package has one.
    pub epoch: Option<u32>,
    /// ARCH (1022).
    pub arch: Option<String>,
    /// VENDOR (1011).
    pub vendor: Option<String>,
    /// LICENSE (1014).
    pub license: Option<String>,
}

fn be32(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("header truncated at byte {at}"))
}

/// Parse one header blob.
pub fn parse_header(blob: &[u8]) -> Result<Header, String> {
    let blob = blob.strip_prefix(&MAGIC[..]).unwrap_or(blob);
    let il = be32(blob, 0)?;
    let dl = be32(blob, 4)?;
    if il == 0 || il > MAX_ENTRIES {
        return Err(format!("header has {il} index entries (1..={MAX_ENTRIES})"));
    }
    if dl > MAX_DATA {
        return Err(format!("header data of {dl} bytes is over {MAX_DATA}"));
    }
    let index_end = 8 + il as usize * 16;
    let data_end = index_end + dl as usize;
    if blob.len() < data_end {
        return Err(format!(
            "header truncated: {} bytes, its sizes need {data_end}",
            blob.len()
        ));
    }
    let data = &blob[index_end..data_end];
    let mut h = Header::default();
    for i in 0..il as usize {
        let at = 8 + i * 16;
        let (tag, kind, offset, count) = (
            be32(blob, at)?,
            be32(blob, at + 4)?,
            be32(blob, at + 8)? as usize,
            be32(blob, at + 12)?,
        );
        let want = matches!(
            tag,
            TAG_NAME | TAG_VERSION | TAG_RELEASE | TAG_EPOCH | TAG_VENDOR | TAG_LICENSE | TAG_ARCH
        );
        if !want {
            continue;
        }
        if offset >= data.len() {
            return Err(format!(
                "tag {tag}: offset {offset} is past the data ({dl} bytes)"
            ));
        }
        if tag == TAG_EPOCH {
            if kind != TYPE_INT32 || count == 0 {
                return Err(format!("tag {tag}: type {kind} count {count}, want INT32"));
            }
            h.epoch = Some(be32(data, offset).map_err(|_| format!("tag {tag}: past the data"))?);
            continue;
        }
        if kind != TYPE_STRING && kind != TYPE_I18NSTRING {
            return Err(format!("tag {tag}: type {kind}, want a string"));
        }
        let rest = &data[offset..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| format!("tag {tag}: string not terminated"))?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        match tag {
            TAG_NAME => h.name = s,
            TAG_VERSION => h.version = s,
            TAG_RELEASE => h.release = s,
            TAG_VENDOR => h.vendor = Some(s),
            TAG_LICENSE => h.license = Some(s),
            _ => h.arch = Some(s),
        }
    }
    if h.name.is_empty() || h.version.is_empty() {
        return Err("header has no NAME or VERSION".into());
    }
    Ok(h)
}

/// The headers of an `rpmdb.sqlite` file's bytes, each a header or why it is not one.
pub fn read_sqlite(db: &[u8]) -> Result<Vec<Result<Header, String>>, String> {
    if !db.starts_with(b"SQLite format 3\0") || db.len() < 100 {
        return Err("not an SQLite database".into());
    }
    // rpm keeps the database in WAL mode; an image holds no live -wal/-shm files, so
    // open the copy as a rollback-journal database (header bytes 18 and 19).
    let mut copy = db.to_vec();
    copy[18] = 1;
    copy[19] = 1;
    let mut file = tempfile::Builder::new()
        .prefix("hoist-rpmdb-")
        .tempfile()
        .map_err(|e| format!("a temporary file: {e}"))?;
    file.write_all(&copy)
        .and_then(|()| file.flush())
        .map_err(|e| format!("a temporary file: {e}"))?;
    drop(copy);
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let sql = |e: rusqlite::Error| format!("SQLite: {e}");
    let conn = rusqlite::Connection::open_with_flags(file.path(), flags).map_err(sql)?;
    conn.execute_batch("PRAGMA query_only = 1; PRAGMA trusted_schema = 0;")
        .map_err(sql)?;
    let mut stmt = conn
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .map_err(sql)?;
    let mut rows = stmt.query([]).map_err(sql)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql)? {
        if out.len() >= MAX_ROWS {
            return Err(format!("more than {MAX_ROWS} rows"));
        }
        let hnum: i64 = row.get(0).map_err(sql)?;
        let blob = match row.get_ref(1).map_err(sql)? {
            rusqlite::types::ValueRef::Blob(b) => parse_header(b),
            _ => Err("blob is not a BLOB".into()),
        };
        out.push(blob.map_err(|e| format!("row {hnum}: {e}")));
    }
    Ok(out)
}

/// The packages of an `rpmdb.sqlite`; what could not be read goes to `notes`.
pub fn parse_sqlite(
    db: &[u8],
    location: &str,
    distro: Option<&(String, String)>,
    notes: &mut Vec<String>,
) -> Vec<Package> {
    let headers = match read_sqlite(db) {
        Ok(h) => h,
        Err(e) => {
            notes.push(format!(
                "RPM database {location} could not be read ({e}): RPM packages are not listed"
            ));
            return Vec::new();
        }
    };
    let mut bad = Vec::new();
    let mut out = Vec::new();
    for h in headers {
        match h {
            Ok(h) if h.name == "gpg-pubkey" => {} // an imported signing key, not a package
            Ok(h) => out.push(package(h, location, distro)),
            Err(e) => bad.push(e),
        }
    }
    if !bad.is_empty() {
        notes.push(format!(
            "RPM database {location}: {} malformed header(s) not listed (first: {})",
            bad.len(),
            bad[0]
        ));
    }
    out
}

fn package(h: Header, location: &str, distro: Option<&(String, String)>) -> Package {
    let namespace = distro
        .map(|(id, _)| id.clone())
        .filter(|id| !id.is_empty())
        .or_else(|| {
            h.vendor.as_ref().map(|v| {
                let first = v.split_whitespace().next().unwrap_or("");
                first.to_ascii_lowercase()
            })
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "rpm".into());
    let vr = if h.release.is_empty() {
        h.version.clone()
    } else {
        format!("{}-{}", h.version, h.release)
    };
    let epoch = h.epoch.map(|e| e.to_string()).unwrap_or_default();
    let distro_q = distro
        .filter(|(_, v)| !v.is_empty())
        .map(|(id, v)| format!("{id}-{v}"))
        .unwrap_or_default();
    let arch = h.arch.clone().unwrap_or_default();
    let purl = super::purl::purl(
        "rpm",
        &format!(
            "{}/{}",
            namespace.replace('/', "-"),
            h.name.replace('/', "-")
        ),
        Some(&vr),
        &[("arch", &arch), ("distro", &distro_q), ("epoch", &epoch)],
    );
    Package {
        version: Some(match h.epoch {
            Some(e) => format!("{e}:{vr}"),
            None => vr,
        }),
        name: h.name,
        purl,
        source: Origin::Rpm,
        location: location.to_string(),
        license: h.license,
        supplier: h.vendor,
    }
}

/// Write an `rpmdb.sqlite` with rpm's `Packages` table holding `headers` (for tests).
#[doc(hidden)]
pub fn make_sqlite(path: &std::path::Path, headers: &[Vec<u8>]) -> rusqlite::Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);",
    )?;
    for h in headers {
        conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [h])?;
    }
    conn.close().map_err(|(_, e)| e)
}

/// Build a header blob of string tags and an optional epoch (for tests).
#[doc(hidden)]
pub fn make_header(strings: &[(u32, &str)], epoch: Option<u32>) -> Vec<u8> {
    let mut index = Vec::new();
    let mut data = Vec::new();
    if let Some(e) = epoch {
        index.push((TAG_EPOCH, TYPE_INT32, data.len() as u32, 1u32));
        data.extend_from_slice(&e.to_be_bytes());
    }
    for (tag, s) in strings {
        index.push((*tag, TYPE_STRING, data.len() as u32, 1));
        data.extend_from_slice(s.as_bytes());
        data.push(0);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(index.len() as u32).to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    for (t, k, o, c) in index {
        for v in [t, k, o, c] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    out.extend_from_slice(&data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bash() -> Vec<u8> {
        make_header(
            &[
                (TAG_NAME, "bash"),
                (TAG_VERSION, "5.2.26"),
                (TAG_RELEASE, "3.fc40"),
                (TAG_ARCH, "x86_64"),
                (TAG_VENDOR, "Fedora Project"),
            ],
            Some(1),
        )
    }

    #[test]
    fn reads_the_tags() {
        let h = parse_header(&bash()).unwrap();
        assert_eq!(h.name, "bash");
        assert_eq!(h.version, "5.2.26");
        assert_eq!(h.release, "3.fc40");
        assert_eq!(h.epoch, Some(1));
        assert_eq!(h.arch.as_deref(), Some("x86_64"));
        let mut with_magic = MAGIC.to_vec();
        with_magic.extend(bash());
        assert_eq!(parse_header(&with_magic).unwrap(), h);
        let d = ("fedora".to_string(), "40".to_string());
        let p = package(h, "/var/lib/rpm/rpmdb.sqlite", Some(&d));
        assert_eq!(
            p.purl,
            "pkg:rpm/fedora/bash@5.2.26-3.fc40?arch=x86_64&distro=fedora-40&epoch=1"
        );
        assert_eq!(p.version.as_deref(), Some("1:5.2.26-3.fc40"));
    }

    #[test]
    fn malformed_headers_are_errors() {
        let good = bash();
        for n in 0..good.len() {
            assert!(parse_header(&good[..n]).is_err(), "truncated to {n}");
        }
        let mut huge = good.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_header(&huge).unwrap_err().contains("index entries"));
        let mut big_data = good.clone();
        big_data[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_header(&big_data).unwrap_err().contains("over"));
        let mut just_under = good.clone();
        just_under[0..4].copy_from_slice(&MAX_ENTRIES.to_be_bytes());
        assert!(parse_header(&just_under).unwrap_err().contains("truncated"));
        let mut bad_offset = good.clone();
        bad_offset[8 + 8..8 + 12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_header(&bad_offset).unwrap_err().contains("offset"));
        let mut unterminated = good.clone();
        let n = unterminated.len();
        unterminated[n - 1] = b'x';
        assert!(parse_header(&unterminated).is_err());
        // Every single-byte corruption is an answer, not a panic.
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0xff;
            let _ = parse_header(&b);
        }
        assert!(read_sqlite(b"SQLite format 3").is_err());
        assert!(read_sqlite(&[0u8; 4096]).is_err());
    }
}
