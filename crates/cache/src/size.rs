//! Human sizes: [`parse_size`] for `--cache-max-size` and friends, [`format_size`] for
//! reports.

use crate::error::{Error, Result};

/// `MiB`, … are powers of 1024 (`2g` = 2 GiB, as `du -B` and `docker --memory`);
/// `KB`, `MB`, `GB`, `TB`, `PB` are powers of 1000 (`500MB` = 500 000 000); `B` is bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let err = |why: &str| {
        Error::Invalid(format!(
            "invalid size {s:?}: {why} (expected a number of bytes, optionally with a unit: \
             500MB, 10GiB, 2g, 1.5T)"
        ))
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    if num.is_empty() {
        return Err(err(if t.starts_with('-') {
            "sizes cannot be negative"
        } else {
            "no number"
        }));
    }
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
        return Err(err("not a number"));
    }
    let mult: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "t" | "ti" | "tib" => 1 << 40,
        "p" | "pi" | "pib" => 1 << 50,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "pb" => 1_000_000_000_000_000,
        _ => {
            return Err(err(&format!(
                "unknown unit {unit:?} (use B, K/KiB, M/MiB, G/GiB, T/TiB, P/PiB, or KB, MB, GB, TB, PB)"
            )))
        }
    };
    if frac.len() > 18 || int.len() > 30 {
        return Err(err("too many digits"));
    }
    let int_v: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| err("not a number"))?
    };
    let frac_v: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| err("not a number"))?
    };
    let scale = 10u128.pow(frac.len() as u32);
    if mult == 1 && frac_v != 0 {
        return Err(err("a number of bytes must be whole"));
    }
    let v = int_v
        .checked_mul(mult)
        .and_then(|i| i.checked_add(frac_v * mult / scale))
        .filter(|v| *v <= u64::MAX as u128)
        .ok_or_else(|| err("too large"))?;
    Ok(v as u64)
}

/// Format bytes for people: `512 B`, `1.5 KiB`, `340.0 MiB`, `1.2 GiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("500mb").unwrap(), 500_000_000);
        assert_eq!(parse_size("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size(" 1.5 K ").unwrap(), 1536);
        assert_eq!(parse_size("1.5T").unwrap(), 3 << 39);
        assert_eq!(parse_size("64k").unwrap(), 65536);
        assert_eq!(parse_size("12b").unwrap(), 12);
        assert_eq!(parse_size(".5M").unwrap(), 512 << 10);
        assert!(parse_size("16EiB").is_err());
        assert_eq!(parse_size("16383P").unwrap(), 16383 << 50);
        for bad in [
            "",
            "MB",
            "-1",
            "1.2.3",
            "1.5",
            "10 parsecs",
            "1e9",
            "18446744073709551616",
            ".",
        ] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(
                e.contains("invalid size") && e.contains("500MB"),
                "{bad}: {e}"
            );
        }
        assert!(parse_size("-1")
            .unwrap_err()
            .to_string()
            .contains("negative"));
        assert!(parse_size("3 parsecs")
            .unwrap_err()
            .to_string()
            .contains("unknown unit \"parsecs\""));
    }

    #[test]
    fn sizes_format() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(10 << 30), "10.0 GiB");
    }
}
