//! `RUN --mount` parsing and the small Go value parsers BuildKit relies on (durations,
//! sizes, booleans, CSV).

use crate::model::{MountOptions, MountType, Sharing};

/// BuildKit's first pass over a mount at parse time: the CSV must be valid and `from` may not
/// use variables.
pub(crate) fn check_mount_syntax(spec: &str) -> Result<(), String> {
    let fields = parse_csv_record(spec).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
    for f in fields {
        if let Some((k, v)) = f.split_once('=') {
            if k.eq_ignore_ascii_case("from") && has_variable(v) {
                return Err(format!(
                    "'{}' doesn't support variable expansion, define alias stage instead",
                    k.to_lowercase()
                ));
            }
        }
    }
    Ok(())
}

/// Whether `s` matches Go's `\$.` (a `$` followed by any character but a newline).
fn has_variable(s: &str) -> bool {
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '$' {
            if let Some(&n) = it.peek() {
                if n != '\n' {
                    return true;
                }
            }
        }
    }
    false
}

/// Parses a mount with every value passed through `expand` (BuildKit `parseMount` with an
/// expander), then validates it.
pub(crate) fn parse_mount(
    spec: &str,
    expand: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<MountOptions, String> {
    let fields = parse_csv_record(spec).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
    let mut m = MountOptions {
        kind: MountType::Bind,
        target: None,
        source: None,
        from: None,
        readonly: false,
        id: None,
        sharing: None,
        required: false,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        env: None,
    };
    let mut ro_auto = true;
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v)),
            None => (field.to_lowercase(), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.readonly = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = false;
                    ro_auto = false;
                }
                "required" => {
                    if matches!(m.kind, MountType::Secret | MountType::Ssh) {
                        m.required = true;
                    } else {
                        return Err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            type_name(m.kind)
                        ));
                    }
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let value = expand(value)?;
        match key.as_str() {
            "type" => {
                m.kind = match value.to_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => return Err(format!("unsupported mount type {value:?}")),
                }
            }
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => {
                m.readonly = go_parse_bool(&value)
                    .ok_or_else(|| format!("invalid value for {key}: {value}"))?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                let rw = go_parse_bool(&value)
                    .ok_or_else(|| format!("invalid value for {key}: {value}"))?;
                m.readonly = !rw;
                ro_auto = false;
            }
            "required" => {
                if matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    m.required = go_parse_bool(&value)
                        .ok_or_else(|| format!("invalid value for {key}: {value}"))?;
                } else {
                    return Err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        type_name(m.kind)
                    ));
                }
            }
            "size" => {
                if m.kind == MountType::Tmpfs {
                    m.size = Some(
                        ram_in_bytes(&value)
                            .ok_or_else(|| format!("invalid value for {key}: {value}"))?,
                    );
                } else {
                    return Err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        type_name(m.kind)
                    ));
                }
            }
            "id" => m.id = Some(value),
            "sharing" => {
                m.sharing = Some(match value.to_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => return Err(format!("unsupported sharing value {value:?}")),
                })
            }
            "mode" => {
                m.mode = Some(
                    parse_uint(&value, 8)
                        .ok_or_else(|| format!("invalid value {value} for mode"))?,
                );
            }
            "uid" => {
                m.uid = Some(
                    parse_uint(&value, 10)
                        .ok_or_else(|| format!("invalid value {value} for uid"))?,
                )
            }
            "gid" => {
                m.gid = Some(
                    parse_uint(&value, 10)
                        .ok_or_else(|| format!("invalid value {value} for gid"))?,
                )
            }
            "env" => {
                if m.kind == MountType::Secret {
                    m.env = Some(value);
                } else {
                    return Err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        type_name(m.kind)
                    ));
                }
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    validate(&mut m, ro_auto)?;
    Ok(m)
}

fn type_name(t: MountType) -> &'static str {
    match t {
        MountType::Bind => "bind",
        MountType::Cache => "cache",
        MountType::Tmpfs => "tmpfs",
        MountType::Secret => "secret",
        MountType::Ssh => "ssh",
    }
}

fn validate(m: &mut MountOptions, ro_auto: bool) -> Result<(), String> {
    let file_info_allowed = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        let t = type_name(m.kind);
        if m.mode.is_some() {
            return Err(format!("mode not allowed for {t:?} type mounts"));
        }
        if m.uid.is_some() {
            return Err(format!("uid not allowed for {t:?} type mounts"));
        }
        if m.gid.is_some() {
            return Err(format!("gid not allowed for {t:?} type mounts"));
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".into());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".into());
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() && m.env.is_none() {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".into());
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(format!(
            "invalid cache sharing set for {} mount",
            type_name(m.kind)
        ));
    }
    Ok(())
}

/// Go's `encoding/csv` reading one record with default settings.
pub(crate) fn parse_csv_record(s: &str) -> Result<Vec<String>, String> {
    let s = s.trim_end_matches(['\r', '\n']);
    if s.is_empty() {
        return Err("EOF".into());
    }
    let col = |byte: usize| s[..byte].chars().count() + 1;
    let b = s.as_bytes();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        if b.get(i) == Some(&b'"') {
            i += 1;
            let mut field = String::new();
            let mut seg = i;
            loop {
                match b.get(i) {
                    None => return Err(format!("parse error on line 1, column {}: extraneous or missing \" in quoted-field", col(i))),
                    Some(b'"') => {
                        field.push_str(&s[seg..i]);
                        if b.get(i + 1) == Some(&b'"') {
                            field.push('"');
                            i += 2;
                            seg = i;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    Some(_) => i += 1,
                }
            }
            fields.push(field);
            match b.get(i) {
                None => return Ok(fields),
                Some(b',') => i += 1,
                Some(_) => {
                    return Err(format!(
                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                    col(i)
                ))
                }
            }
        } else {
            let start = i;
            loop {
                match b.get(i) {
                    None => {
                        fields.push(s[start..].to_string());
                        return Ok(fields);
                    }
                    Some(b',') => {
                        fields.push(s[start..i].to_string());
                        i += 1;
                        break;
                    }
                    Some(b'"') => {
                        return Err(format!(
                            "parse error on line 1, column {}: bare \" in non-quoted-field",
                            col(i)
                        ))
                    }
                    Some(_) => i += 1,
                }
            }
        }
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, base, 32)`.
fn parse_uint(s: &str, base: u32) -> Option<u32> {
    if s.is_empty() || !s.chars().all(|c| c.is_digit(base)) {
        return None;
    }
    u32::from_str_radix(s, base).ok()
}

/// go-units `RAMInBytes`: `64m`, `1.5GiB`, `100` (bytes), 1024-based.
pub(crate) fn ram_in_bytes(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == 0 {
        return None;
    }
    while i < b.len() && b[i] == b'.' {
        let st = i + 1;
        let mut j = st;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j == st {
            return None;
        }
        i = j;
    }
    let num: f64 = s[..i].parse().ok()?;
    let mut rest = &s[i..];
    if let Some(r) = rest.strip_prefix(' ') {
        rest = r;
    }
    let mut mult: f64 = 1.0;
    if let Some(c) = rest.chars().next() {
        let m = match c.to_ascii_lowercase() {
            'k' => Some(1024f64),
            'm' => Some(1024f64.powi(2)),
            'g' => Some(1024f64.powi(3)),
            't' => Some(1024f64.powi(4)),
            'p' => Some(1024f64.powi(5)),
            _ => None,
        };
        if let Some(m) = m {
            mult = m;
            rest = &rest[1..];
        }
    }
    if let Some(r) = rest.strip_prefix(['i', 'I']) {
        rest = r;
    }
    if let Some(r) = rest.strip_prefix(['b', 'B']) {
        rest = r;
    }
    if !rest.is_empty() {
        return None;
    }
    Some((num * mult) as i64)
}

/// Go's `time.ParseDuration`, in nanoseconds; the error is Go's message.
pub(crate) fn parse_go_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let mut i = 0;
        let mut v: u128 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(b[i] - b'0')))
                .ok_or_else(invalid)?;
            if v > 1 << 63 {
                return Err(invalid());
            }
            i += 1;
        }
        let pre = i > 0;
        let mut frac: u128 = 0;
        let mut scale: u128 = 1;
        let mut post = false;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let st = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if scale < 1_000_000_000_000_000_000 {
                    frac = frac * 10 + u128::from(b[i] - b'0');
                    scale *= 10;
                }
                i += 1;
            }
            post = i > st;
        }
        if !pre && !post {
            return Err(invalid());
        }
        s = &s[i..];
        let ulen = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if ulen == 0 {
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let u = &s[..ulen];
        s = &s[ulen..];
        let unit: u128 = match u {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(u),
                    go_quote(orig)
                ))
            }
        };
        let whole = v.checked_mul(unit).ok_or_else(invalid)?;
        let part = frac * unit / scale;
        total = total.checked_add(whole + part).ok_or_else(invalid)?;
        if total > (1u128 << 63) - u128::from(!neg) {
            return Err(invalid());
        }
    }
    let t = total as i128;
    Ok(if neg { -t } else { t } as i64)
}

/// Formats nanoseconds in the largest unit that divides them exactly (`30s`, `1500ms`).
pub(crate) fn format_duration(ns: i64) -> String {
    const UNITS: [(i64, &str); 6] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    if ns == 0 {
        return "0s".into();
    }
    for (n, u) in UNITS {
        if ns % n == 0 {
            return format!("{}{u}", ns / n);
        }
    }
    format!("{ns}ns")
}

/// Go's `%q` for the strings that appear in messages (ASCII-safe approximation).
pub(crate) fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_go_duration("30s"), Ok(30_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(
            parse_go_duration("10"),
            Err("time: missing unit in duration \"10\"".into())
        );
        assert_eq!(
            parse_go_duration("1x"),
            Err("time: unknown unit \"x\" in duration \"1x\"".into())
        );
        assert_eq!(
            parse_go_duration(""),
            Err("time: invalid duration \"\"".into())
        );
        assert_eq!(format_duration(90_000_000_000), "90s");
    }

    #[test]
    fn sizes_and_csv() {
        assert_eq!(ram_in_bytes("64m"), Some(64 << 20));
        assert_eq!(ram_in_bytes("1.5GiB"), Some(1536 << 20));
        assert_eq!(ram_in_bytes("100"), Some(100));
        assert_eq!(ram_in_bytes("x"), None);
        assert_eq!(parse_csv_record("a=1,\"b=2,3\"").unwrap(), ["a=1", "b=2,3"]);
        assert!(parse_csv_record("a=\"x\"").is_err());
    }

    #[test]
    fn mounts() {
        let mut id = |s: &str| Ok(s.to_string());
        let m = parse_mount(
            "type=cache,target=/root/.cache,sharing=locked,mode=0755",
            &mut id,
        )
        .unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.mode, Some(0o755));
        assert!(!m.readonly);
        let m = parse_mount("type=secret,id=tok,required", &mut id).unwrap();
        assert!(m.required && m.readonly);
        assert_eq!(
            parse_mount("type=bind,uid=1", &mut id).unwrap_err(),
            "uid not allowed for \"bind\" type mounts"
        );
        assert!(check_mount_syntax("type=bind,from=$X").is_err());
    }
}
