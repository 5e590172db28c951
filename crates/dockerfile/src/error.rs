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

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(e) = &self.expected {
            write!(f, " (expected {e})")?;
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
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
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

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
