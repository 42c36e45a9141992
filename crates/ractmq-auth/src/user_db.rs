//! The built-in user database: users an operator adds and changes while the broker runs.
//!
//! `ractmq ctl users add|passwd|delete|list` and the REST API call into a [`UserDb`]; the authentication chain
//! and SCRAM read from it. Each user has an argon2id hash for plain CONNECT passwords and SCRAM-SHA-256
//! credentials for enhanced authentication, both derived when the password is set, so no plain text is kept.
//! Users imported with another system's hash ([`UserDb::import`]: PBKDF2, bcrypt, Mosquitto's) have no SCRAM
//! credentials, because those cannot be derived from a hash: SCRAM fails for them (as for an unknown user)
//! until their password is set again.
//!
//! The database is one JSON file. Every change is written to it atomically and durably before the call
//! returns, so an operator's "done" survives `kill -9` or a power cut; when the write fails, the change is not
//! made in memory either. Changes hash passwords and flush files (milliseconds): an async caller runs them on a
//! blocking thread, as it does [`UserDb::verify`].

mod file;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::{Mutex, RwLock};
use ractmq_protocol::scram::{ScramCredentials, ScramLookup};
use serde::{Deserialize, Serialize};

use crate::error::FileError;
use crate::password::{self, HashError, UnsupportedHash, MAX_PASSWORD_LEN};

/// The version of the file format written; a file of another version is refused, not guessed at.
const FORMAT_VERSION: u32 = 1;
/// The longest user name MQTT can carry.
const MAX_NAME_LEN: usize = 65535;

/// One user, as stored.
#[derive(Clone, Serialize, Deserialize)]
struct UserRecord {
    name: String,
    /// A PHC or Mosquitto hash [`password::verify_password`] accepts.
    password_hash: String,
    superuser: bool,
    /// `None` for users imported with a foreign hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scram: Option<ScramCredentials>,
}

/// The file: users sorted by name, so that a diff of two versions shows what changed.
#[derive(Serialize, Deserialize)]
struct DbFile {
    version: u32,
    users: Vec<UserRecord>,
}

/// What a listing shows of a user: never the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    /// The user name.
    pub name: String,
    /// Whether ACLs are skipped for this user.
    pub superuser: bool,
    /// Whether the user can log in with SCRAM-SHA-256 (false for imported hashes until the password is reset).
    pub scram: bool,
}

/// A password that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Whether ACLs are skipped for this user.
    pub superuser: bool,
}

/// A password that did not match a known user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongPassword;

/// Why a change to the database was refused or failed.
#[derive(Debug)]
pub enum UserDbError {
    /// [`UserDb::add`] or [`UserDb::import`] of a name that exists.
    AlreadyExists(String),
    /// A change to a name that does not exist.
    NotFound(String),
    /// The name is empty, too long, or has a ':' or a control character.
    InvalidName(&'static str),
    /// The password is longer than [`MAX_PASSWORD_LEN`], or no salt could be drawn.
    Password(HashError),
    /// [`UserDb::import`] of a hash [`crate::password`] cannot check.
    UnsupportedHash(UnsupportedHash),
    /// The database file could not be read or is not a valid database.
    File(FileError),
    /// The change could not be written; it was not made.
    Io {
        /// The database file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
}

impl fmt::Display for UserDbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserDbError::AlreadyExists(name) => write!(f, "user {name:?} already exists"),
            UserDbError::NotFound(name) => write!(f, "no user {name:?}"),
            UserDbError::InvalidName(why) => write!(f, "invalid user name: {why}"),
            UserDbError::Password(e) => write!(f, "{e}"),
            UserDbError::UnsupportedHash(e) => write!(f, "{e}"),
            UserDbError::File(e) => write!(f, "{e}"),
            UserDbError::Io { path, error } => {
                write!(f, "{}: cannot save the user database: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for UserDbError {}

/// The built-in user database. Share it as `Arc<UserDb>`: reads and changes may come from any thread.
pub struct UserDb {
    /// Where it is kept; `None`: in memory only, gone when the broker stops.
    path: Option<PathBuf>,
    users: RwLock<HashMap<String, UserRecord>>,
    /// Serialises changes, so that each is written on top of the one before; readers never wait for disk.
    writer: Mutex<()>,
}

impl fmt::Debug for UserDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserDb")
            .field("path", &self.path)
            .field("users", &self.users.read().len())
            .finish()
    }
}

impl UserDb {
    /// Load the database at `path`, or create it empty (written at once, so that an unwritable place is found
    /// at start, not at the first change).
    pub fn open(path: impl AsRef<Path>) -> Result<UserDb, UserDbError> {
        let path = path.as_ref().to_path_buf();
        let users = if path.exists() {
            load(&path)?
        } else {
            let empty = HashMap::new();
            persist(&path, &empty)?;
            empty
        };
        Ok(UserDb {
            path: Some(path),
            users: RwLock::new(users),
            writer: Mutex::new(()),
        })
    }

    /// An empty database kept in memory only: what users are added to it is gone when the broker stops
    /// (the broker uses it for users given on its command line, and when no database file is configured).
    pub fn in_memory() -> UserDb {
        UserDb {
            path: None,
            users: RwLock::new(HashMap::new()),
            writer: Mutex::new(()),
        }
    }

    /// Add a user with a password (argon2id and SCRAM credentials are derived now). Error if the name exists.
    pub fn add(&self, name: &str, password: &[u8], superuser: bool) -> Result<(), UserDbError> {
        validate_name(name)?;
        self.refuse_existing(name)?;
        let (password_hash, scram) = derive(password)?;
        self.change(|users| {
            if users.contains_key(name) {
                return Err(UserDbError::AlreadyExists(name.to_string()));
            }
            let record = UserRecord {
                name: name.to_string(),
                password_hash,
                superuser,
                scram: Some(scram),
            };
            users.insert(name.to_string(), record);
            Ok(())
        })
    }

    /// Add a user with a hash made elsewhere (any format [`crate::password`] checks). The user has no SCRAM
    /// credentials until [`UserDb::set_password`]. Error if the name exists.
    pub fn import(&self, name: &str, hash: &str, superuser: bool) -> Result<(), UserDbError> {
        validate_name(name)?;
        password::scheme(hash).map_err(UserDbError::UnsupportedHash)?;
        self.change(|users| {
            if users.contains_key(name) {
                return Err(UserDbError::AlreadyExists(name.to_string()));
            }
            let record = UserRecord {
                name: name.to_string(),
                password_hash: hash.to_string(),
                superuser,
                scram: None,
            };
            users.insert(name.to_string(), record);
            Ok(())
        })
    }

    /// Give an existing user a new password (and new SCRAM credentials).
    pub fn set_password(&self, name: &str, password: &[u8]) -> Result<(), UserDbError> {
        if !self.users.read().contains_key(name) {
            return Err(UserDbError::NotFound(name.to_string()));
        }
        let (password_hash, scram) = derive(password)?;
        self.change(|users| {
            let record = users
                .get_mut(name)
                .ok_or_else(|| UserDbError::NotFound(name.to_string()))?;
            record.password_hash = password_hash;
            record.scram = Some(scram);
            Ok(())
        })
    }

    /// Make an existing user a superuser (ACLs skipped) or not.
    pub fn set_superuser(&self, name: &str, superuser: bool) -> Result<(), UserDbError> {
        self.change(|users| {
            let record = users
                .get_mut(name)
                .ok_or_else(|| UserDbError::NotFound(name.to_string()))?;
            record.superuser = superuser;
            Ok(())
        })
    }

    /// Remove a user. Clients already connected as this user stay connected; the broker decides whether to
    /// kick them.
    pub fn delete(&self, name: &str) -> Result<(), UserDbError> {
        self.change(|users| {
            users
                .remove(name)
                .map(drop)
                .ok_or_else(|| UserDbError::NotFound(name.to_string()))
        })
    }

    /// Every user, sorted by name, without hashes.
    pub fn list(&self) -> Vec<UserSummary> {
        let mut list: Vec<UserSummary> = self.users.read().values().map(summary).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// One user, without the hash.
    pub fn get(&self, name: &str) -> Option<UserSummary> {
        self.users.read().get(name).map(summary)
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.users.read().len()
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.users.read().is_empty()
    }

    /// `None` when `name` is not a user; otherwise whether `password` matches. Slow by design (see
    /// [`password::verify_password`]): call it off the reactor. No lock is held while the hash is computed.
    pub fn verify(&self, name: &str, password: &[u8]) -> Option<Result<Verified, WrongPassword>> {
        let (stored, superuser) = {
            let users = self.users.read();
            let record = users.get(name)?;
            (record.password_hash.clone(), record.superuser)
        };
        // Hashes are checked when they enter the database, so Err cannot happen; were it to, no match.
        match password::verify_password(&stored, password) {
            Ok(true) => Some(Ok(Verified { superuser })),
            _ => Some(Err(WrongPassword)),
        }
    }

    /// The user's SCRAM-SHA-256 credentials; `None` for unknown users and imported ones.
    pub fn scram(&self, name: &str) -> Option<ScramCredentials> {
        self.users.read().get(name)?.scram.clone()
    }

    /// The database file; `None` when it lives in memory only.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn refuse_existing(&self, name: &str) -> Result<(), UserDbError> {
        if self.users.read().contains_key(name) {
            return Err(UserDbError::AlreadyExists(name.to_string()));
        }
        Ok(())
    }

    /// Apply `edit` to a copy, write the copy to disk, and only then make it the database in memory.
    fn change(
        &self,
        edit: impl FnOnce(&mut HashMap<String, UserRecord>) -> Result<(), UserDbError>,
    ) -> Result<(), UserDbError> {
        let _writer = self.writer.lock();
        let mut next = self.users.read().clone();
        edit(&mut next)?;
        if let Some(path) = &self.path {
            persist(path, &next)?;
        }
        *self.users.write() = next;
        Ok(())
    }
}

/// SCRAM-SHA-256 reads the users' stored keys straight from the database, so changes apply at the next login.
impl ScramLookup for UserDb {
    fn credentials(&self, user: &str) -> Option<ScramCredentials> {
        self.scram(user)
    }
}

fn summary(record: &UserRecord) -> UserSummary {
    UserSummary {
        name: record.name.clone(),
        superuser: record.superuser,
        scram: record.scram.is_some(),
    }
}

/// The argon2id hash and SCRAM credentials of a new password.
fn derive(password: &[u8]) -> Result<(String, ScramCredentials), UserDbError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(UserDbError::Password(HashError::TooLong));
    }
    let hash = password::hash_password(password).map_err(UserDbError::Password)?;
    Ok((hash, ScramCredentials::generate(password)))
}

/// Names must fit in CONNECT, and survive an export to a `user:hash` password file and a log line intact.
fn validate_name(name: &str) -> Result<(), UserDbError> {
    if name.is_empty() {
        Err(UserDbError::InvalidName("empty"))
    } else if name.len() > MAX_NAME_LEN {
        Err(UserDbError::InvalidName("longer than 65535 bytes"))
    } else if name.contains(':') {
        Err(UserDbError::InvalidName("contains ':'"))
    } else if name.chars().any(char::is_control) {
        Err(UserDbError::InvalidName("contains a control character"))
    } else {
        Ok(())
    }
}

fn load(path: &Path) -> Result<HashMap<String, UserRecord>, UserDbError> {
    let text = crate::password_file::read_bounded(path).map_err(UserDbError::File)?;
    let db: DbFile = serde_json::from_str(&text).map_err(|e| {
        // serde_json's message ends in " at line L column C"; the line goes in the error's own field.
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message);
        UserDbError::File(FileError::at(
            path,
            e.line(),
            format!("{message} (column {})", e.column()),
        ))
    })?;
    if db.version != FORMAT_VERSION {
        return Err(UserDbError::File(FileError::at(
            path,
            0,
            format!(
                "format version {} is not {FORMAT_VERSION}; written by another ractmq?",
                db.version
            ),
        )));
    }
    let mut users = HashMap::with_capacity(db.users.len());
    for record in db.users {
        let bad = |why: String| UserDbError::File(FileError::at(path, 0, format!("user {:?}: {why}", record.name)));
        if let Err(UserDbError::InvalidName(why)) = validate_name(&record.name) {
            return Err(bad(format!("invalid name: {why}")));
        }
        if let Err(e) = password::scheme(&record.password_hash) {
            return Err(bad(e.reason().to_string()));
        }
        if users.contains_key(&record.name) {
            return Err(bad("listed twice".to_string()));
        }
        users.insert(record.name.clone(), record);
    }
    Ok(users)
}

fn persist(path: &Path, users: &HashMap<String, UserRecord>) -> Result<(), UserDbError> {
    let mut records: Vec<UserRecord> = users.values().cloned().collect();
    records.sort_by(|a, b| a.name.cmp(&b.name));
    let db = DbFile {
        version: FORMAT_VERSION,
        users: records,
    };
    let io_error = |error| UserDbError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut bytes = serde_json::to_vec_pretty(&db).map_err(|e| io_error(io::Error::other(e)))?;
    bytes.push(b'\n');
    file::write_atomically(path, &bytes).map_err(io_error)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ractmq_protocol::scram::ScramSha256;

    use super::*;

    fn open() -> (tempfile::TempDir, UserDb) {
        let dir = tempfile::tempdir().unwrap();
        let db = UserDb::open(dir.path().join("users.json")).unwrap();
        (dir, db)
    }

    #[test]
    fn open_creates_an_empty_database_file() {
        let (dir, db) = open();
        assert!(db.is_empty());
        let text = std::fs::read_to_string(dir.path().join("users.json")).unwrap();
        assert!(text.contains(r#""version": 1"#), "{text}");
    }

    #[test]
    fn added_users_verify_and_survive_a_reopen() {
        let (dir, db) = open();
        db.add("alice", b"wonderland", false).unwrap();
        db.add("root", b"toor", true).unwrap();
        assert_eq!(
            db.verify("alice", b"wonderland"),
            Some(Ok(Verified { superuser: false }))
        );
        assert_eq!(db.verify("alice", b"wonderlanD"), Some(Err(WrongPassword)));
        assert_eq!(db.verify("bob", b"wonderland"), None);
        assert!(matches!(
            db.add("alice", b"x", true),
            Err(UserDbError::AlreadyExists(_))
        ));

        // What a fresh process (after kill -9) would read.
        let again = UserDb::open(dir.path().join("users.json")).unwrap();
        assert_eq!(again.verify("root", b"toor"), Some(Ok(Verified { superuser: true })));
        assert_eq!(again.list(), db.list());
        let text = std::fs::read_to_string(again.path().unwrap()).unwrap();
        assert!(!text.contains("wonderland"), "no plain text on disk");
    }

    #[test]
    fn passwords_superuser_flags_and_deletions_change_and_persist() {
        let (dir, db) = open();
        db.add("alice", b"one", false).unwrap();
        db.set_password("alice", b"two").unwrap();
        db.set_superuser("alice", true).unwrap();
        assert_eq!(db.verify("alice", b"one"), Some(Err(WrongPassword)));
        assert_eq!(db.verify("alice", b"two"), Some(Ok(Verified { superuser: true })));
        assert!(matches!(db.set_password("bob", b"x"), Err(UserDbError::NotFound(_))));
        assert!(matches!(db.set_superuser("bob", true), Err(UserDbError::NotFound(_))));
        db.delete("alice").unwrap();
        assert!(matches!(db.delete("alice"), Err(UserDbError::NotFound(_))));
        assert_eq!(db.verify("alice", b"two"), None);
        assert!(UserDb::open(dir.path().join("users.json")).unwrap().is_empty());
    }

    #[test]
    fn listings_are_sorted_and_show_no_hash() {
        let (_dir, db) = open();
        db.add("zed", b"z", false).unwrap();
        db.add("amy", b"a", true).unwrap();
        let hash = "$2b$04$R2d6U/A7O.KGd/H3GoOnZOa4J8AJGpuImAcitSamrA4.6Jr5ilidy";
        db.import("imported", hash, false).unwrap();
        let list = db.list();
        let names: Vec<&str> = list.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["amy", "imported", "zed"]);
        assert_eq!(
            db.get("imported"),
            Some(UserSummary {
                name: "imported".into(),
                superuser: false,
                scram: false
            })
        );
        assert!(!format!("{list:?}").contains('$'));
    }

    #[test]
    fn invalid_names_long_passwords_and_foreign_garbage_are_refused() {
        let (_dir, db) = open();
        for name in ["", "a:b", "tab\there", "nl\n", &"x".repeat(65536)] {
            assert!(
                matches!(db.add(name, b"p", false), Err(UserDbError::InvalidName(_))),
                "{name:?}"
            );
        }
        let long = vec![b'p'; MAX_PASSWORD_LEN + 1];
        assert!(matches!(
            db.add("u", &long, false),
            Err(UserDbError::Password(HashError::TooLong))
        ));
        assert!(matches!(
            db.import("u", "plain", false),
            Err(UserDbError::UnsupportedHash(_))
        ));
        assert!(db.is_empty());
        db.add("ünïcödé name", b"", false).unwrap();
        assert_eq!(db.verify("ünïcödé name", b""), Some(Ok(Verified { superuser: false })));
    }

    #[test]
    fn imported_hashes_verify_but_have_no_scram_until_the_password_is_set() {
        let (_dir, db) = open();
        let mosquitto = "$7$101$xzKwo7iDq9jmjIPv$csCh4TXEPx/He/hxx4SIXwMRu0kjzGspvPHDQF91cc2W1IZMGDRbs2W6Ji93YaTYhrZvuBVHz0qXqLa6pHx8vA==";
        db.import("alice", mosquitto, false).unwrap();
        assert_eq!(
            db.verify("alice", b"correct horse"),
            Some(Ok(Verified { superuser: false }))
        );
        assert_eq!(db.scram("alice"), None);
        db.set_password("alice", b"new").unwrap();
        assert!(db.scram("alice").is_some());
    }

    #[test]
    fn scram_reads_the_database_live() {
        let (_dir, db) = open();
        let db = Arc::new(db);
        let _scram = ScramSha256::with_lookup(db.clone());
        assert_eq!(db.credentials("alice"), None);
        db.add("alice", b"pencil", false).unwrap();
        let credentials = db.credentials("alice").unwrap();
        let salt = credentials.salt.clone();
        assert_eq!(
            credentials,
            ScramCredentials::derive(b"pencil", &salt, credentials.iterations)
        );
    }

    #[test]
    fn a_change_that_cannot_be_written_is_not_made() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let db = UserDb::open(sub.join("users.json")).unwrap();
        db.add("alice", b"a", false).unwrap();
        std::fs::remove_dir_all(&sub).unwrap();
        let err = db.add("bob", b"b", false).unwrap_err();
        assert!(matches!(err, UserDbError::Io { .. }), "{err}");
        assert!(err.to_string().contains("cannot save the user database"), "{err}");
        assert!(matches!(db.delete("alice"), Err(UserDbError::Io { .. })));
        assert_eq!(db.list().len(), 1, "memory unchanged");
        assert!(db.verify("alice", b"a").is_some());
    }

    #[test]
    fn a_broken_database_file_is_one_line_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        let cases = [
            (
                "{\n  \"version\": 1,\n  \"users\": [\n    {\"name\": }\n  ]\n}\n",
                4,
                "expected value",
            ),
            (r#"{"version": 2, "users": []}"#, 0, "format version 2"),
            (
                r#"{"version": 1, "users": [{"name": "a", "password_hash": "x", "superuser": false}]}"#,
                0,
                "user \"a\"",
            ),
            (
                r#"{"version": 1, "users": [{"name": "a:b", "password_hash": "$6$DeVqIKW5hWHeQ5AW$VdB8gDmkqsvToxucD2WYrlZhSBQ+E8cKacrNYKGkuhtYI348jkitNtj44dyuCjjBo5ZCPKqjxJ4VIQmafmjUdg==", "superuser": false}]}"#,
                0,
                "invalid name",
            ),
        ];
        for (text, line, message) in cases {
            std::fs::write(&path, text).unwrap();
            let UserDbError::File(err) = UserDb::open(&path).unwrap_err() else {
                panic!("expected a file error for {text}");
            };
            assert_eq!(err.line, line, "{err}");
            assert!(err.message.contains(message), "{err}");
            assert_eq!(err.to_string().lines().count(), 1);
        }
    }

    #[test]
    fn concurrent_changes_are_all_kept() {
        let (dir, db) = open();
        let db = Arc::new(db);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let db = db.clone();
                std::thread::spawn(move || {
                    for i in 0..5 {
                        db.add(&format!("user-{t}-{i}"), b"p", false).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(db.len(), 20);
        assert_eq!(UserDb::open(dir.path().join("users.json")).unwrap().len(), 20);
    }
}
