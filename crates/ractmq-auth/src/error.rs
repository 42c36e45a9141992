//! The one error an operator sees for a bad credentials or ACL file: the file, the line and what is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

/// A file that could not be read or parsed. Displays as one line, `FILE:LINE: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The file as the operator named it.
    pub file: PathBuf,
    /// 1-based line number, or 0 when the error is about the whole file (it could not be read).
    pub line: usize,
    /// What is wrong and, where it helps, how to fix it.
    pub message: String,
}

impl FileError {
    /// An error at `line` of `file`.
    pub fn at(file: &Path, line: usize, message: impl Into<String>) -> FileError {
        FileError {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for FileError {}
