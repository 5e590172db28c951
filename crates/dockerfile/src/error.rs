//! Errors: one or more [`Diagnostic`]s, each naming file, line and column.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One problem found in a Dockerfile.
///
/// Displays as `FILE:LINE:COLUMN: MESSAGE (expected EXPECTED)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The file name given to [`parse`](crate::parse).
    pub file: String,
    /// 1-based line where the problem starts.
    pub line: usize,
    /// 1-based column (in characters) where the offending text starts.
    pub column: usize,
    /// 1-based last line of the instruction involved.
    pub end_line: usize,
    /// The offending text, as written.
    pub snippet: String,
    /// What is wrong; quotes the offending text.
    pub message: String,
    /// What was expected instead, when that can be said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
}

/// How many characters of a message or expectation a diagnostic displays: a message
/// quotes the offending text, which may be a huge line or a file that is not a
/// Dockerfile at all (a link to `/etc/shadow`), so what is shown is bounded.
pub const MAX_SHOWN_CHARS: usize = 200;

/// How many diagnostics an [`Error`] displays (the rest are counted).
pub const MAX_SHOWN_DIAGNOSTICS: usize = 5;

/// `text` cut to at most `max` characters, with `…` and the number of bytes left out.
pub fn excerpt(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(text),
        Some((cut, _)) => std::borrow::Cow::Owned(format!(
            "{}… ({} more bytes)",
            &text[..cut],
            text.len() - cut
        )),
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.message.lines().next().unwrap_or_default();
        write!(
            f,
            "{}:{}:{}: {}",
            self.file,
            self.line,
            self.column,
            excerpt(message, MAX_SHOWN_CHARS)
        )?;
        if let Some(e) = &self.expected {
            write!(f, " (expected {})", excerpt(e, MAX_SHOWN_CHARS))?;
        }
        Ok(())
    }
}

/// The error type of this crate: at least one [`Diagnostic`].
///
/// Parsing goes on after an error in one instruction, so a single [`Error`] can report every
/// broken instruction of a file; structural errors (an unterminated heredoc, a bad `escape`
/// directive) stop parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct Error {
    /// The problems, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self
            .diagnostics
            .iter()
            .take(MAX_SHOWN_DIAGNOSTICS)
            .enumerate()
        {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        if let Some(more) = self.diagnostics.len().checked_sub(MAX_SHOWN_DIAGNOSTICS) {
            if more > 0 {
                write!(f, "\n… and {more} more problems")?;
            }
        }
        Ok(())
    }
}

impl Error {
    /// An error made of one diagnostic.
    pub fn single(d: Diagnostic) -> Self {
        Error {
            diagnostics: vec![d],
        }
    }

    /// The first diagnostic (there is always one).
    pub fn first(&self) -> &Diagnostic {
        &self.diagnostics[0]
    }
}

/// Decode a Dockerfile's bytes; invalid UTF-8 is an error naming the line and column
/// (1-based, the column in characters) and the byte offset of the first bad byte.
pub fn decode<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        // The prefix is valid UTF-8 by construction.
        let column = std::str::from_utf8(&good[start..]).map_or(1, |s| s.chars().count() + 1);
        Error::single(Diagnostic {
            file: file.to_string(),
            line,
            column,
            end_line: line,
            snippet: String::new(),
            message: format!(
                "invalid UTF-8 at byte {} (line {line}, column {column}): a Dockerfile must be UTF-8 text",
                e.valid_up_to()
            ),
            expected: None,
        })
    })
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_names_line_and_column() {
        let e = decode(b"FROM scratch\nRUN \xc3\xa9\xff\n", "Dockerfile").unwrap_err();
        let d = e.first();
        assert_eq!((d.line, d.column), (2, 6), "{e}");
        assert!(
            e.to_string()
                .starts_with("Dockerfile:2:6: invalid UTF-8 at byte 19"),
            "{e}"
        );
    }

    #[test]
    fn display_is_bounded() {
        let long = "x".repeat(10_000);
        let d = Diagnostic {
            file: "Dockerfile".into(),
            line: 1,
            column: 1,
            end_line: 1,
            snippet: long.clone(),
            message: format!("unknown instruction: {long}\nsecond line"),
            expected: None,
        };
        let e = Error {
            diagnostics: vec![d; 50],
        };
        let shown = e.to_string();
        assert!(shown.len() < 2_000, "{} bytes", shown.len());
        assert!(shown.contains("and 45 more problems"), "{shown}");
        assert!(!shown.contains("second line"));
    }
}
