//! The two error types a rule can produce: `SqlError` when compiling (operator mistakes, reported once with
//! the position in the SQL text) and `EvalError` when evaluating one event (the row counts as "failed").

use std::fmt;

/// A rule SQL that does not compile. Displays as one line:
/// `SQL error at line 1, column 42: expected FROM, found "WHER"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// 1-based line of the offending text.
    pub line: u64,
    /// 1-based column (in characters) of the offending text.
    pub column: u64,
    /// What is wrong, without the position.
    pub message: String,
}

impl SqlError {
    pub(crate) fn new(line: u64, column: u64, message: impl Into<String>) -> Self {
        // sqlparser uses 0 for "unknown"; a position is easier to read as "the start" than as 0.
        SqlError {
            line: line.max(1),
            column: column.max(1),
            message: message.into(),
        }
    }

    pub(crate) fn at(loc: sqlparser::tokenizer::Location, message: impl Into<String>) -> Self {
        SqlError::new(loc.line, loc.column, message)
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SQL error at line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for SqlError {}

/// Why evaluating a rule against one event failed (type mismatch, division by zero, a bound exceeded...).
/// The broker counts the event as "failed" for that rule; nothing else happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    message: String,
}

impl EvalError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        EvalError {
            message: message.into(),
        }
    }

    /// The reason, as one line of text.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EvalError {}

/// Shorthand used by the built-in functions.
pub(crate) fn fail<T>(message: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError::new(message))
}
