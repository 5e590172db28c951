//! Creation times: reproducible by default.

use super::Image;

/// `SOURCE_DATE_EPOCH` from the environment, when it is set to a non-negative integer.
pub fn source_date_epoch() -> Option<i64> {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|t| *t >= 0)
}

/// The time a reproducible image is created at: `SOURCE_DATE_EPOCH`, else 0
/// (1970-01-01T00:00:00Z), never the clock.
pub fn reproducible_time() -> i64 {
    source_date_epoch().unwrap_or(0)
}

/// Format seconds since the epoch as RFC 3339 in UTC (`2024-01-31T12:00:00Z`).
///
/// ```
/// assert_eq!(hoist_image::mutate::rfc3339(0), "1970-01-01T00:00:00Z");
/// assert_eq!(hoist_image::mutate::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
/// ```
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

impl Image {
    /// Set the config's `created` time (RFC 3339, as the engine computes it).
    pub fn with_created(mut self, created: impl Into<String>) -> Image {
        self.config.created = Some(created.into());
        self
    }

    /// Set the config's `created` time and that of every history entry to `secs`
    /// (ggcr's `mutate.Time`, without touching layer contents: hoist's layers get
    /// their times when they are written, see
    /// [`WriteOptions`](crate::layer::WriteOptions)).
    pub fn with_time(mut self, secs: i64) -> Image {
        let t = rfc3339(secs);
        for h in &mut self.config.history {
            h.created = Some(t.clone());
        }
        self.config.created = Some(t);
        self
    }
}
