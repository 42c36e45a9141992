//! What can go wrong with a data directory, each as the one line an operator reads before deciding what to do.

use std::path::PathBuf;

/// Why a store could not be opened or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Another process (a node, or another `ractmq` run) has the data directory open.
    InUse(PathBuf),
    /// The directory or its file cannot be created, read or written.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        error: String,
    },
    /// The file is damaged: truncated, overwritten, or not a store at all.
    Damaged {
        /// The file.
        path: PathBuf,
        /// What was found wrong.
        what: String,
    },
    /// The file was written by a newer version of ractmq, in a format this one cannot read.
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// The file's format version.
        found: u64,
    },
    /// A commit failed after the store was opened: nothing more is acknowledged.
    WriteFailed(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::InUse(dir) => write!(
                f,
                "data dir {} is in use by another ractmq process: stop it, or give this node its own --data-dir",
                dir.display()
            ),
            StoreError::Io { path, error } => write!(
                f,
                "data dir: cannot use {}: {error}; check that the path exists and is writable, or choose another \
                 --data-dir",
                path.display()
            ),
            StoreError::Damaged { path, what } => write!(
                f,
                "data dir: {} is damaged ({what}); restore it from a backup, or move it away to start with an empty \
                 store",
                path.display()
            ),
            StoreError::NewerFormat { path, found } => write!(
                f,
                "data dir: {} was written by a newer ractmq (store format {found}, this one reads up to {}); run \
                 that version, or move the file away to start with an empty store",
                path.display(),
                crate::tables::FORMAT
            ),
            StoreError::WriteFailed(why) => write!(
                f,
                "data dir: a write failed ({why}); the node stops acknowledging messages: free disk space or fix \
                 the disk, then restart it"
            ),
        }
    }
}

impl std::error::Error for StoreError {}
