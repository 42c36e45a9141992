//! Mosquitto's password file, so that an operator can point ractmq at the file Mosquitto used.
//!
//! One `user:hash` per line, as `mosquitto_passwd` writes it; `#` starts a comment line and blank lines are
//! skipped. The hash may be in any format [`crate::password`] checks. Mosquitto skips a line it cannot read
//! and logs a notice; here a bad line fails the whole load with a [`FileError`] naming the file and the line,
//! so that a typo never silently locks a user out (or, on reload, the previous file stays in force).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::error::FileError;
use crate::password;

/// Files above this size are refused: a password file of a million users is far below it.
const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;
/// The longest user name MQTT can carry.
const MAX_USER_LEN: usize = 65535;

/// A loaded password file: user name -> stored hash.
#[derive(Debug, Clone)]
pub struct PasswordFile {
    path: PathBuf,
    users: HashMap<String, String>,
}

impl PasswordFile {
    /// Read and check the whole file. Every hash is parsed now, so a bad line is an error here, not at login.
    pub fn load(path: impl AsRef<Path>) -> Result<PasswordFile, FileError> {
        let path = path.as_ref();
        let text = read_bounded(path)?;
        PasswordFile::parse(path, &text)
    }

    /// Parse `text` as the contents of `path` (which only names the file in errors).
    pub fn parse(path: &Path, text: &str) -> Result<PasswordFile, FileError> {
        let mut users: HashMap<String, String> = HashMap::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(FileError::at(path, number, "expected user:hash (no ':' on this line)"));
            };
            let (user, hash) = (user.trim(), hash.trim());
            if user.is_empty() {
                return Err(FileError::at(path, number, "empty user name before ':'"));
            }
            if user.len() > MAX_USER_LEN {
                return Err(FileError::at(path, number, "user name longer than 65535 bytes"));
            }
            if let Err(e) = password::scheme(hash) {
                return Err(FileError::at(
                    path,
                    number,
                    format!(
                        "user {user:?}: {} (a plain-text file can be hashed with mosquitto_passwd -U)",
                        e.reason()
                    ),
                ));
            }
            if let Some(first) = first_line.get(user) {
                return Err(FileError::at(
                    path,
                    number,
                    format!("user {user:?} is already defined on line {first}"),
                ));
            }
            first_line.insert(user.to_string(), number);
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(PasswordFile {
            path: path.to_path_buf(),
            users,
        })
    }

    /// `None` when `user` is not in the file; otherwise whether `password` matches. Slow by design (see
    /// [`password::verify_password`]): call it off the reactor.
    pub fn verify(&self, user: &str, password: &[u8]) -> Option<bool> {
        let stored = self.users.get(user)?;
        // Every hash was parsed at load, so Err cannot happen; were it to, the password does not match.
        Some(password::verify_password(stored, password).unwrap_or(false))
    }

    /// Whether `user` has a line in the file.
    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The file this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A password file that can be re-read while clients log in against it (on SIGHUP or an admin call).
#[derive(Debug)]
pub struct ReloadablePasswordFile {
    path: PathBuf,
    current: ArcSwap<PasswordFile>,
}

impl ReloadablePasswordFile {
    /// Load `path` for the first time.
    pub fn open(path: impl AsRef<Path>) -> Result<ReloadablePasswordFile, FileError> {
        let file = PasswordFile::load(path.as_ref())?;
        Ok(ReloadablePasswordFile {
            path: path.as_ref().to_path_buf(),
            current: ArcSwap::from_pointee(file),
        })
    }

    /// Re-read the file. On error the file loaded before stays in force, and the error says why.
    pub fn reload(&self) -> Result<(), FileError> {
        let file = PasswordFile::load(&self.path)?;
        self.current.store(Arc::new(file));
        Ok(())
    }

    /// The file in force now.
    pub fn current(&self) -> Arc<PasswordFile> {
        self.current.load_full()
    }

    /// [`PasswordFile::verify`] against the file in force now.
    pub fn verify(&self, user: &str, password: &[u8]) -> Option<bool> {
        self.current.load().verify(user, password)
    }
}

/// The file as UTF-8 text, refusing files above [`MAX_FILE_SIZE`]; errors name the line of bad UTF-8.
pub(crate) fn read_bounded(path: &Path) -> Result<String, FileError> {
    let file = std::fs::File::open(path).map_err(|e| FileError::at(path, 0, format!("cannot read: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::at(path, 0, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(FileError::at(path, 0, "larger than 64 MiB"));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        FileError::at(path, line, "not valid UTF-8")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOSQUITTO: &str = include_str!("../testdata/mosquitto.passwd");

    fn parse(text: &str) -> Result<PasswordFile, FileError> {
        PasswordFile::parse(Path::new("users.passwd"), text)
    }

    #[test]
    fn a_file_written_by_mosquitto_passwd_loads_and_verifies() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mosquitto.passwd");
        let file = PasswordFile::load(&path).unwrap();
        assert_eq!(file.len(), 4);
        assert_eq!(file.verify("alice", b"correct horse"), Some(true));
        assert_eq!(file.verify("alice", b"correct horse "), Some(false));
        assert_eq!(file.verify("bob", "p@ss:w0rd ünï".as_bytes()), Some(true));
        assert_eq!(file.verify("carol", b"secret"), Some(true));
        assert_eq!(file.verify("mallory", b"secret"), None);
    }

    #[test]
    fn comments_blank_lines_and_surrounding_blanks_are_skipped() {
        let text = format!(
            "# users\n\n   \n  # indented comment\r\n{}\r\n",
            MOSQUITTO.replace("alice:", "  alice :  ")
        );
        let file = parse(&text).unwrap();
        assert_eq!(file.len(), 4);
        assert!(file.contains("alice"));
        assert_eq!(file.verify("alice", b"correct horse"), Some(true));
    }

    #[test]
    fn a_bad_line_is_one_error_naming_file_and_line() {
        let carol = MOSQUITTO.lines().find(|l| l.starts_with("carol:")).unwrap();
        let cases = [
            (format!("# c\n{carol}\nbob\n"), 3, "no ':'"),
            (format!("{carol}\n:{}\n", &carol[6..]), 2, "empty user name"),
            ("\n\nalice:plaintext\n".to_string(), 3, "unknown hash format"),
            ("alice:$md5$x\n".to_string(), 1, "unknown hash format"),
            ("alice:$6$short$hash\n".to_string(), 1, "Mosquitto salt"),
            (format!("{carol}\n# again\n{carol}\n"), 3, "already defined on line 1"),
            (
                format!("{}:{}\n", "u".repeat(65536), &carol[6..]),
                1,
                "longer than 65535",
            ),
        ];
        for (text, line, message) in cases {
            let err = parse(&text).unwrap_err();
            assert_eq!(err.line, line, "{err}");
            assert!(err.message.contains(message), "{err}");
            let shown = err.to_string();
            assert!(shown.starts_with(&format!("users.passwd:{line}: ")), "{shown}");
            assert_eq!(shown.lines().count(), 1);
        }
    }

    #[test]
    fn unreadable_files_are_errors_at_line_zero_or_at_the_bad_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = PasswordFile::load(&missing).unwrap_err();
        assert_eq!(err.line, 0);
        assert!(err.to_string().contains("cannot read"), "{err}");
        let binary = dir.path().join("binary");
        std::fs::write(&binary, b"# ok\n# ok\n\xff\xfe:x\n").unwrap();
        assert_eq!(PasswordFile::load(&binary).unwrap_err().line, 3);
    }

    #[test]
    fn a_failed_reload_keeps_the_file_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        let carol = MOSQUITTO.lines().find(|l| l.starts_with("carol:")).unwrap();
        std::fs::write(&path, format!("{carol}\n")).unwrap();
        let file = ReloadablePasswordFile::open(&path).unwrap();
        assert_eq!(file.verify("carol", b"secret"), Some(true));

        std::fs::write(&path, format!("{carol}\nbroken line\n")).unwrap();
        assert_eq!(file.reload().unwrap_err().line, 2);
        assert_eq!(file.verify("carol", b"secret"), Some(true), "old file still in force");

        std::fs::write(&path, MOSQUITTO).unwrap();
        file.reload().unwrap();
        assert_eq!(file.current().len(), 4);
        assert_eq!(file.verify("alice", b"correct horse"), Some(true));
    }
}
