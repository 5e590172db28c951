//! Make a mutated tar readable again: recompute every header's checksum.
//!
//! A fuzzer that flips a byte of a tar header almost always breaks its checksum, and
//! the tar reader then stops at that header, so nothing past the checksum check would
//! ever be explored. The archive targets run their input through [`fix_checksums`]
//! first: the walk follows the headers as a reader does (512-byte blocks, each
//! header's size rounded up), rewrites each checksum and stops at the first zero
//! block or at a size it cannot read.

/// Tar block size.
const BLOCK: usize = 512;

/// `data` with every header's checksum recomputed (see the module docs).
pub fn fix_checksums(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut pos = 0usize;
    while pos + BLOCK <= out.len() {
        let block = &mut out[pos..pos + BLOCK];
        if block.iter().all(|&b| b == 0) {
            break;
        }
        if stored_checksum(block) != Some(checksum(block)) {
            set_checksum(block);
        }
        let Some(size) = entry_size(block) else {
            break;
        };
        let Some(next) = size
            .checked_add(BLOCK as u64 - 1)
            .map(|s| s / BLOCK as u64 * BLOCK as u64)
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| s.checked_add(pos + BLOCK))
        else {
            break;
        };
        pos = next;
    }
    out
}

/// Write the checksum of a 512-byte header into its `chksum` field (as GNU tar
/// writes it: six octal digits, NUL, space).
pub fn set_checksum(block: &mut [u8]) {
    let sum = checksum(block);
    let text = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(&text.as_bytes()[text.len() - 8..]);
}

/// The checksum a header should have: its bytes summed, the field itself as spaces.
fn checksum(block: &[u8]) -> u32 {
    let field: u32 = block[148..156].iter().map(|&b| u32::from(b)).sum();
    block.iter().map(|&b| u32::from(b)).sum::<u32>() - field + 8 * u32::from(b' ')
}

/// The checksum a header claims.
fn stored_checksum(block: &[u8]) -> Option<u32> {
    let text: String = block[148..156]
        .iter()
        .map(|&b| b as char)
        .filter(|c| c.is_ascii_digit())
        .collect();
    u32::from_str_radix(&text, 8).ok()
}

/// The entry size a header gives (octal, or GNU base-256).
fn entry_size(block: &[u8]) -> Option<u64> {
    let field = &block[124..136];
    if field[0] & 0x80 != 0 {
        let mut v: u64 = 0;
        for &b in &field[4..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .filter(|&b| b != b' ')
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_checksum_is_repaired() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_path("a").unwrap();
        h.set_size(3);
        h.set_cksum();
        b.append(&h, &b"abc"[..]).unwrap();
        let good = b.into_inner().unwrap();
        assert!(
            fix_checksums(&good) == good,
            "a valid archive is left as it is"
        );

        let mut bad = good.clone();
        bad[0] = b'z';
        let names = |d: &[u8]| -> Vec<String> {
            let mut a = tar::Archive::new(d);
            a.entries()
                .and_then(|es| {
                    es.map(|e| e.map(|e| e.path().unwrap().display().to_string()))
                        .collect()
                })
                .unwrap_or_default()
        };
        assert!(names(&bad).is_empty());
        assert_eq!(names(&fix_checksums(&bad)), vec!["z".to_string()]);
    }
}
