//! Password hashes: making new ones, and checking a password against the hashes operators bring with them.
//!
//! New hashes are argon2id in the PHC string format. An operator moving to ractmq brings a Mosquitto password
//! file, or users exported from another system, so a stored hash may also be argon2i, PBKDF2 (the PHC form and
//! the form Python's passlib writes), bcrypt, or one of Mosquitto's own two forms:
//!
//! - `$6$<base64 salt>$<base64 SHA-512(password || salt)>` (Mosquitto 1.x, `mosquitto_passwd -H sha512`);
//! - `$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>` (Mosquitto 2's default),
//!
//! both with standard base64, a 12-byte salt and a 64-byte digest, as Mosquitto's broker requires.
//!
//! Checking a password is deliberately slow (milliseconds): callers on an async runtime must run
//! [`verify_password`] and [`hash_password`] on a blocking thread (`tokio::task::spawn_blocking`). A stored hash
//! chooses its own cost, so the costs it may ask for are bounded: a hash that would take minutes or gigabytes
//! per login is refused as unsupported rather than honoured. Every digest comparison is constant-time.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The longest password accepted: the most an MQTT CONNECT can carry.
pub const MAX_PASSWORD_LEN: usize = 65535;

/// Cost bounds for stored hashes; anything above is refused, not computed.
const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;
const MAX_ARGON2_PASSES: u32 = 64;
const MAX_ARGON2_LANES: u32 = 16;
const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;
const MAX_BCRYPT_COST: u32 = 18;
/// Mosquitto's salt and digest sizes (`SALT_LEN` and SHA-512's output).
const MOSQUITTO_SALT_LEN: usize = 12;
const MOSQUITTO_DIGEST_LEN: usize = 64;
/// PBKDF2 digests longer than SHA-512's output are not written by anyone and would only cost time.
const MAX_PBKDF2_DIGEST_LEN: usize = 64;

/// Standard base64 that accepts the text with or without `=` padding: OpenSSL (Mosquitto) pads, passlib does not.
const B64_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A stored hash this module cannot check: unknown format, malformed, or asking for more cost than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsupportedHash {
    why: &'static str,
}

impl UnsupportedHash {
    /// What is wrong with the hash, for an operator.
    pub fn reason(&self) -> &'static str {
        self.why
    }
}

impl fmt::Display for UnsupportedHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unsupported password hash: {}", self.why)
    }
}

impl std::error::Error for UnsupportedHash {}

fn unsupported(why: &'static str) -> UnsupportedHash {
    UnsupportedHash { why }
}

/// Why a new hash could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashError {
    /// The password is longer than [`MAX_PASSWORD_LEN`].
    TooLong,
    /// The operating system gave no random bytes for the salt.
    NoRandomness,
}

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashError::TooLong => write!(f, "password longer than {MAX_PASSWORD_LEN} bytes"),
            HashError::NoRandomness => write!(f, "the operating system's random number generator failed"),
        }
    }
}

impl std::error::Error for HashError {}

/// The family of a stored hash, as [`scheme`] recognises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashScheme {
    /// `$argon2id$`, `$argon2i$` or `$argon2d$` (PHC string).
    Argon2,
    /// `$pbkdf2-sha256$` or `$pbkdf2-sha512$`, PHC (`i=…,l=…`) or passlib (`<rounds>$…`) form.
    Pbkdf2,
    /// `$2a$`, `$2b$` or `$2y$`.
    Bcrypt,
    /// Mosquitto's `$6$`: one round of salted SHA-512.
    MosquittoSha512,
    /// Mosquitto's `$7$`: PBKDF2-HMAC-SHA512.
    MosquittoPbkdf2,
}

/// Hash `password` for storage: argon2id, a random 16-byte salt, OWASP's recommended cost (19 MiB, 2 passes),
/// as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub fn hash_password(password: &[u8]) -> Result<String, HashError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(HashError::TooLong);
    }
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|_| HashError::NoRandomness)?;
    // 16 bytes always encode to a valid PHC salt.
    let salt = SaltString::encode_b64(&salt).map_err(|_| HashError::NoRandomness)?;
    let hash = argon2id()
        .hash_password_customized(password, None, None, new_hash_params(), &salt)
        .map_err(|_| HashError::TooLong)?;
    Ok(hash.to_string())
}

/// The cost of new hashes. Unit tests of this crate use the minimum so that they stay fast; nothing else can.
fn new_hash_params() -> Params {
    #[cfg(test)]
    {
        Params::new(Params::MIN_M_COST, 1, 1, None).unwrap_or_default()
    }
    #[cfg(not(test))]
    {
        Params::DEFAULT
    }
}

fn argon2id() -> Argon2<'static> {
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, new_hash_params())
}

/// Recognise `stored` without checking any password: the file loaders call this so that a bad line is
/// reported when the file is read, not at the first login.
pub fn scheme(stored: &str) -> Result<HashScheme, UnsupportedHash> {
    parse(stored).map(|parsed| parsed.scheme())
}

/// Whether `password` matches `stored`. `Err` when `stored` is not a hash this module can check (see the module
/// doc); a password longer than [`MAX_PASSWORD_LEN`] never matches. Slow by design: call it off the reactor.
pub fn verify_password(stored: &str, password: &[u8]) -> Result<bool, UnsupportedHash> {
    let parsed = parse(stored)?;
    if password.len() > MAX_PASSWORD_LEN {
        return Ok(false);
    }
    match parsed {
        Parsed::Argon2(hash) => match Argon2::default().verify_password(password, &hash) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::Password) => Ok(false),
            Err(_) => Err(unsupported("argon2 parameters are invalid")),
        },
        Parsed::Pbkdf2 {
            sha512,
            rounds,
            salt,
            digest,
        } => {
            let mut computed = vec![0u8; digest.len()];
            if sha512 {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, rounds, &mut computed);
            } else {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, &salt, rounds, &mut computed);
            }
            Ok(computed.ct_eq(&digest).into())
        }
        // The bcrypt crate compares in constant time; like every bcrypt, it reads only the first 72 bytes.
        Parsed::Bcrypt => bcrypt::verify(password, stored).map_err(|_| unsupported("malformed bcrypt hash")),
        Parsed::Mosquitto { rounds, salt, digest } => {
            let computed: [u8; MOSQUITTO_DIGEST_LEN] = match rounds {
                None => Sha512::new()
                    .chain_update(password)
                    .chain_update(&salt)
                    .finalize()
                    .into(),
                Some(rounds) => {
                    let mut out = [0u8; MOSQUITTO_DIGEST_LEN];
                    pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, rounds, &mut out);
                    out
                }
            };
            Ok(computed.ct_eq(&digest[..]).into())
        }
    }
}

/// A stored hash, parsed and within the cost bounds.
enum Parsed<'a> {
    Argon2(PasswordHash<'a>),
    Pbkdf2 {
        sha512: bool,
        rounds: u32,
        salt: Vec<u8>,
        digest: Vec<u8>,
    },
    Bcrypt,
    Mosquitto {
        /// `None` for `$6$` (one SHA-512), the PBKDF2 rounds for `$7$`.
        rounds: Option<u32>,
        salt: Vec<u8>,
        digest: [u8; MOSQUITTO_DIGEST_LEN],
    },
}

impl Parsed<'_> {
    fn scheme(&self) -> HashScheme {
        match self {
            Parsed::Argon2(_) => HashScheme::Argon2,
            Parsed::Pbkdf2 { .. } => HashScheme::Pbkdf2,
            Parsed::Bcrypt => HashScheme::Bcrypt,
            Parsed::Mosquitto { rounds: None, .. } => HashScheme::MosquittoSha512,
            Parsed::Mosquitto { rounds: Some(_), .. } => HashScheme::MosquittoPbkdf2,
        }
    }
}

fn parse(stored: &str) -> Result<Parsed<'_>, UnsupportedHash> {
    let id = stored
        .strip_prefix('$')
        .and_then(|rest| rest.split('$').next())
        .ok_or(unsupported(
            "unknown hash format (a hash starts with '$' and its scheme)",
        ))?;
    match id {
        "argon2id" | "argon2i" | "argon2d" => parse_argon2(stored),
        "pbkdf2-sha256" | "pbkdf2-sha512" => parse_pbkdf2(stored, id == "pbkdf2-sha512"),
        "2a" | "2b" | "2y" => parse_bcrypt(stored),
        "6" | "7" => parse_mosquitto(stored),
        "2x" => Err(unsupported(
            "$2x$ is the bcrypt of a buggy library; re-hash the password",
        )),
        _ => Err(unsupported(
            "unknown hash format (expected argon2, pbkdf2-sha256/512, bcrypt $2a$/$2b$/$2y$, or Mosquitto's $6$/$7$)",
        )),
    }
}

fn parse_argon2(stored: &str) -> Result<Parsed<'_>, UnsupportedHash> {
    let hash = PasswordHash::new(stored).map_err(|_| unsupported("malformed argon2 PHC string"))?;
    if hash.hash.is_none() || hash.salt.is_none() {
        return Err(unsupported("argon2 hash without salt or digest"));
    }
    let params = Params::try_from(&hash).map_err(|_| unsupported("invalid argon2 parameters"))?;
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB {
        return Err(unsupported("argon2 memory cost above 256 MiB"));
    }
    if params.t_cost() > MAX_ARGON2_PASSES || params.p_cost() > MAX_ARGON2_LANES {
        return Err(unsupported(
            "argon2 time or parallelism cost above the limit (t=64, p=16)",
        ));
    }
    Ok(Parsed::Argon2(hash))
}

fn parse_pbkdf2(stored: &str, sha512: bool) -> Result<Parsed<'_>, UnsupportedHash> {
    let fields: Vec<&str> = stored.split('$').collect();
    // passlib: $pbkdf2-sha256$<rounds>$<ab64 salt>$<ab64 digest>, where ab64 is base64 with '.' for '+'.
    if let ["", _, rounds, salt, digest] = fields[..] {
        if !rounds.is_empty() && rounds.bytes().all(|b| b.is_ascii_digit()) {
            let rounds = pbkdf2_rounds(rounds.parse().ok())?;
            let salt = B64_ANY_PADDING
                .decode(salt.replace('.', "+"))
                .map_err(|_| unsupported("pbkdf2 salt is not base64"))?;
            let digest = B64_ANY_PADDING
                .decode(digest.replace('.', "+"))
                .map_err(|_| unsupported("pbkdf2 digest is not base64"))?;
            return pbkdf2_parsed(sha512, rounds, salt, digest);
        }
    }
    // PHC: $pbkdf2-sha256$i=<rounds>[,l=<length>]$<B64 salt>$<B64 digest>
    let hash = PasswordHash::new(stored).map_err(|_| unsupported("malformed pbkdf2 PHC string"))?;
    let rounds = pbkdf2_rounds(hash.params.get_decimal("i"))?;
    let (Some(salt), Some(digest)) = (hash.salt, hash.hash) else {
        return Err(unsupported("pbkdf2 hash without salt or digest"));
    };
    if let Some(length) = hash.params.get_decimal("l") {
        if usize::try_from(length).ok() != Some(digest.len()) {
            return Err(unsupported("pbkdf2 l= does not match the digest's length"));
        }
    }
    let mut salt_buf = [0u8; 64];
    let salt = salt
        .decode_b64(&mut salt_buf)
        .map_err(|_| unsupported("pbkdf2 salt is not base64"))?
        .to_vec();
    pbkdf2_parsed(sha512, rounds, salt, digest.as_bytes().to_vec())
}

fn pbkdf2_rounds(rounds: Option<u32>) -> Result<u32, UnsupportedHash> {
    match rounds {
        Some(r) if (1..=MAX_PBKDF2_ROUNDS).contains(&r) => Ok(r),
        Some(_) => Err(unsupported("pbkdf2 iterations outside 1..=10000000")),
        None => Err(unsupported("pbkdf2 hash without an iteration count")),
    }
}

fn pbkdf2_parsed(
    sha512: bool,
    rounds: u32,
    salt: Vec<u8>,
    digest: Vec<u8>,
) -> Result<Parsed<'static>, UnsupportedHash> {
    if salt.is_empty() || digest.is_empty() || digest.len() > MAX_PBKDF2_DIGEST_LEN {
        return Err(unsupported("pbkdf2 salt empty or digest not 1 to 64 bytes"));
    }
    Ok(Parsed::Pbkdf2 {
        sha512,
        rounds,
        salt,
        digest,
    })
}

fn parse_bcrypt(stored: &str) -> Result<Parsed<'_>, UnsupportedHash> {
    // $2b$NN$ then 22 characters of salt and 31 of digest: 60 in all.
    let cost = stored.get(4..6).and_then(|c| c.parse::<u32>().ok());
    let bcrypt_base64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'/';
    let body_ok = stored
        .as_bytes()
        .get(7..)
        .is_some_and(|body| body.iter().all(bcrypt_base64));
    if stored.len() != 60 || stored.as_bytes().get(6) != Some(&b'$') || cost.is_none() || !body_ok {
        return Err(unsupported("malformed bcrypt hash"));
    }
    match cost {
        Some(cost) if (4..=MAX_BCRYPT_COST).contains(&cost) => Ok(Parsed::Bcrypt),
        _ => Err(unsupported("bcrypt cost outside 4..=18")),
    }
}

fn parse_mosquitto(stored: &str) -> Result<Parsed<'_>, UnsupportedHash> {
    let fields: Vec<&str> = stored.split('$').collect();
    let (rounds, salt, digest) = match fields[..] {
        ["", "6", salt, digest] => (None, salt, digest),
        ["", "7", rounds, salt, digest] => {
            let rounds = rounds
                .parse::<u32>()
                .ok()
                .filter(|r| (1..=MAX_PBKDF2_ROUNDS).contains(r))
                .ok_or(unsupported("Mosquitto $7$ iterations outside 1..=10000000"))?;
            (Some(rounds), salt, digest)
        }
        _ => {
            return Err(unsupported(
                "malformed Mosquitto hash ($6$salt$hash or $7$iterations$salt$hash)",
            ))
        }
    };
    let salt = B64_ANY_PADDING
        .decode(salt)
        .ok()
        .filter(|s| s.len() == MOSQUITTO_SALT_LEN)
        .ok_or(unsupported(
            "Mosquitto salt is not 12 bytes of base64 (glibc crypt's $6$ is not supported)",
        ))?;
    let digest = B64_ANY_PADDING
        .decode(digest)
        .ok()
        .and_then(|d| <[u8; MOSQUITTO_DIGEST_LEN]>::try_from(d.as_slice()).ok())
        .ok_or(unsupported("Mosquitto digest is not 64 bytes of base64"))?;
    Ok(Parsed::Mosquitto { rounds, salt, digest })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes made by other programs; `testdata/README.md` says how each was made.
    const FOREIGN: &str = include_str!("../testdata/foreign-hashes.txt");
    const MOSQUITTO: &str = include_str!("../testdata/mosquitto.passwd");

    /// `(scheme line, hash, password)` from `foreign-hashes.txt`: `hash<TAB>password` lines.
    fn foreign() -> Vec<(String, String)> {
        FOREIGN
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (hash, password) = l.split_once('\t').unwrap();
                (hash.to_string(), password.to_string())
            })
            .collect()
    }

    #[test]
    fn new_hashes_are_argon2id_with_a_fresh_salt_and_verify() {
        let a = hash_password(b"correct horse").unwrap();
        let b = hash_password(b"correct horse").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert_eq!(verify_password(&a, b"correct horse"), Ok(true));
        assert_eq!(verify_password(&a, b"correct horsE"), Ok(false));
        assert_eq!(verify_password(&a, b""), Ok(false));
        assert_eq!(scheme(&a), Ok(HashScheme::Argon2));
    }

    #[test]
    fn hashes_from_other_programs_verify_with_their_password_only() {
        let hashes = foreign();
        assert!(hashes.len() >= 7);
        for (hash, password) in &hashes {
            assert_eq!(verify_password(hash, password.as_bytes()), Ok(true), "{hash}");
            assert_eq!(verify_password(hash, b"wrong"), Ok(false), "{hash}");
        }
    }

    #[test]
    fn mosquitto_passwd_output_verifies() {
        // alice and bob: `mosquitto_passwd -b` ($7$, 101 iterations); dave: `-I 1000`; carol: `-H sha512` ($6$).
        let users: Vec<(&str, &str)> = MOSQUITTO.lines().filter_map(|l| l.split_once(':')).collect();
        let passwords = [
            ("alice", "correct horse"),
            ("bob", "p@ss:w0rd ünï"),
            ("dave", "hunter2"),
            ("carol", "secret"),
        ];
        for (user, password) in passwords {
            let hash = users.iter().find(|(u, _)| *u == user).unwrap().1;
            assert_eq!(verify_password(hash, password.as_bytes()), Ok(true), "{user}");
            assert_eq!(verify_password(hash, b"secret!"), Ok(false), "{user}");
        }
        let carol = users.iter().find(|(u, _)| *u == "carol").unwrap().1;
        assert_eq!(scheme(carol), Ok(HashScheme::MosquittoSha512));
        let dave = users.iter().find(|(u, _)| *u == "dave").unwrap().1;
        assert_eq!(scheme(dave), Ok(HashScheme::MosquittoPbkdf2));
    }

    #[test]
    fn malformed_or_too_costly_hashes_are_unsupported_not_a_panic() {
        for bad in [
            "",
            "$",
            "plain",
            "$md5$abc",
            "$6$",
            "$6$$",
            "$6$c2FsdA==$AAAA",
            "$6$rounds=5000$saltsalt$hash",
            "$7$0$xzKwo7iDq9jmjIPv$csCh4TXEPx/He/hxx4SIXwMRu0kjzGspvPHDQF91cc2W1IZMGDRbs2W6Ji93YaTYhrZvuBVHz0qXqLa6pHx8vA==",
            "$7$99999999999$xzKwo7iDq9jmjIPv$csCh4TXEPx/He/hxx4SIXwMRu0kjzGspvPHDQF91cc2W1IZMGDRbs2W6Ji93YaTYhrZvuBVHz0qXqLa6pHx8vA==",
            "$7$101$xzKwo7iDq9jmjIPv$csCh4TXEPx",
            "$argon2id$v=19$m=4194304,t=1,p=1$bEAZ5pBhMbGM6xS05aVEzw$lj36LSdgIba+SxronNLvqwsKLTYnHd+ZI6SE5Q9qJRA",
            "$argon2id$v=19$m=64,t=1,p=1$bEAZ5pBhMbGM6xS05aVEzw",
            "$argon2id$garbage",
            "$pbkdf2-sha256$i=0,l=32$c2FsdHNhbHRzYWx0c2FsdA$BBs+1+PaslLtBPULUr8/lQicvVuHiEPMz0i8MjLCbzM",
            "$pbkdf2-sha256$c2FsdHNhbHRzYWx0c2FsdA$BBs+1+PaslLtBPULUr8/lQicvVuHiEPMz0i8MjLCbzM",
            "$pbkdf2-sha256$i=1000,l=16$c2FsdHNhbHRzYWx0c2FsdA$BBs+1+PaslLtBPULUr8/lQicvVuHiEPMz0i8MjLCbzM",
            "$pbkdf2-sha256$1000$$Ot0uO1qLznIN4WYs9fC9St9QkqwQQdlzZxRy8.QIJh8",
            "$pbkdf2-sha256$1000$pjSGcA4BYCzlfE/JWWvNeQ$!!",
            "$2b$04$R2d6U/A7O.KGd/H3GoOnZOa4J8AJGpuImAcitSamrA4.6Jr5ilid",
            "$2b$31$R2d6U/A7O.KGd/H3GoOnZOa4J8AJGpuImAcitSamrA4.6Jr5ilidy",
            "$2x$04$R2d6U/A7O.KGd/H3GoOnZOa4J8AJGpuImAcitSamrA4.6Jr5ilidy",
            "$2b$0é$R2d6U/A7O.KGd/H3GoOnZOa4J8AJGpuImAcitSamrA4.6Jr5ilid",
            "$2b$04$R2d6U/A7O.KGd/H3GoOnZOa4J8AJGpuImAcitSamrA4.6Jr5ili$y",
        ] {
            assert!(scheme(bad).is_err(), "{bad}");
            assert!(verify_password(bad, b"x").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_password_longer_than_mqtt_allows_is_refused() {
        let long = vec![b'a'; MAX_PASSWORD_LEN + 1];
        assert_eq!(hash_password(&long), Err(HashError::TooLong));
        let hash = hash_password(b"a").unwrap();
        assert_eq!(verify_password(&hash, &long), Ok(false));
    }
}
