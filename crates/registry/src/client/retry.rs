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
        let cfg = &self.inner.config;
        let max = cfg.retries;
        let mut attempt = 0;
        loop {
            crate::cancel::check()?;
            match f(attempt) {
                Ok(v) => return Ok(v),
                Err(e) if attempt < max && e.is_retryable() => {
                    // The cause goes into the final error, once; each retry says
                    // only what kind of failure it was.
                    tracing::debug!("{what}: attempt {} failed: {e}", attempt + 1);
                    let (wait, note) = match &e {
                        Error::Registry {
                            retry_after: Some(asked),
                            ..
                        } if *asked > cfg.max_retry_after => (
                            cfg.max_retry_after,
                            format!(
                                "; registry asked to wait {} s; waiting at most {} s",
                                asked.as_secs(),
                                cfg.max_retry_after.as_secs()
                            ),
                        ),
                        Error::Registry {
                            retry_after: Some(asked),
                            ..
                        } => (*asked, String::from("; as the registry asked")),
                        _ => (backoff(cfg.retry_delay, attempt), String::new()),
                    };
                    tracing::warn!(
                        "{what}: {}; retrying in {:.1} s (attempt {} of {}){note}",
                        e.brief(),
                        wait.as_secs_f64(),
                        attempt + 2,
                        max + 1
                    );
                    interruptible_sleep(wait)?;
                    attempt += 1;
                }
                Err(e) if attempt > 0 && e.is_retryable() => {
                    return Err(Error::Retried {
                        attempts: attempt + 1,
                        last: Box::new(e),
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sleep, waking up for [`crate::interrupt`].
fn interruptible_sleep(d: Duration) -> Result<()> {
    let end = std::time::Instant::now() + d;
    loop {
        crate::cancel::check()?;
        let now = std::time::Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
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
