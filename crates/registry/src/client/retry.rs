//! Retries with exponential backoff and jitter, honouring `Retry-After`.

use std::time::{Duration, SystemTime};

use crate::{Client, Error, Result};

impl Client {
    /// Run `f` with retries and backoff while it fails with a retryable error.
    pub(crate) fn with_retry<T>(
        &self,
        what: &str,
        mut f: impl FnMut(u32) -> Result<T>,
    ) -> Result<T> {
        let max = self.inner.config.retries;
        let mut attempt = 0;
        loop {
            match f(attempt) {
                Ok(v) => return Ok(v),
                Err(e) if attempt < max && e.is_retryable() => {
                    let wait = match &e {
                        Error::Registry {
                            retry_after: Some(d),
                            ..
                        } => (*d).min(Duration::from_secs(60)),
                        _ => backoff(self.inner.config.retry_delay, attempt),
                    };
                    tracing::warn!(
                        "{what}: {e}; retrying in {:.1}s ({}/{max})",
                        wait.as_secs_f64(),
                        attempt + 1
                    );
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(10));
    let cap = Duration::from_secs(30);
    let d = exp.min(cap);
    // Jitter: up to +50 %, from the clock's nanoseconds (no RNG dependency needed).
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    d + d.mul_f64(f64::from(nanos % 500) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_a_cap() {
        assert!(backoff(Duration::from_millis(100), 3) >= Duration::from_millis(800));
        assert!(backoff(Duration::from_millis(100), 30) <= Duration::from_secs(45));
    }
}
