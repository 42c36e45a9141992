//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5 enhanced authentication method.
//!
//! The broker keeps, per user, only what RFC 5802 §3 calls the stored key and the server key
//! ([`ScramCredentials`]), derived once from the password with a random salt; a plain-text password is never
//! needed to check a login, and none crosses the wire. Where the credentials come from is a [`ScramLookup`]: an
//! in-memory table built from configured passwords ([`ScramSha256::new`]) or the broker's user database.
//!
//! Two round trips: client-first -> server-first (AUTH 0x18), client-final -> server-final (in CONNACK, or in
//! AUTH 0x00 when re-authenticating). Channel binding is not offered (`n,,` only). An unknown user gets a
//! server-first made from a per-broker secret, so that the exchange does not reveal which user names exist; it
//! fails at the proof like a wrong password.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::{AuthExchange, AuthStep, Authenticator};

type HmacSha256 = Hmac<Sha256>;

/// The Authentication Method name clients put in CONNECT.
pub const METHOD: &str = "SCRAM-SHA-256";
/// PBKDF2 iterations of newly derived credentials: RFC 7677's minimum. Unknown users are offered the same count,
/// so credentials derived with another count tell a prober that the user exists.
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// Salt length of newly derived credentials.
const SALT_LEN: usize = 16;

/// What the server keeps of one user's password for SCRAM-SHA-256 (RFC 5802 §3): enough to check a client's
/// proof and prove itself, not enough to log in as the user.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredentials {
    /// The PBKDF2 salt the client is told in server-first.
    #[serde(with = "b64_bytes")]
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count the client is told in server-first.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    #[serde(with = "b64_key")]
    pub stored_key: [u8; 32],
    /// `HMAC(SaltedPassword, "Server Key")`.
    #[serde(with = "b64_key")]
    pub server_key: [u8; 32],
}

impl ScramCredentials {
    /// Derive the credentials of `password` with this salt and iteration count (one PBKDF2: milliseconds at
    /// [`DEFAULT_ITERATIONS`]).
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> ScramCredentials {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        ScramCredentials {
            salt: salt.to_vec(),
            iterations,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// Derive the credentials of `password` with a fresh random salt and [`DEFAULT_ITERATIONS`].
    pub fn generate(password: &[u8]) -> ScramCredentials {
        ScramCredentials::derive(password, &random::<SALT_LEN>(), DEFAULT_ITERATIONS)
    }
}

/// The keys stay out of logs: they are as good as a password hash to an attacker.
impl fmt::Debug for ScramCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredentials")
            .field("salt_len", &self.salt.len())
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Where SCRAM finds a user's credentials: a fixed table, or a user database that changes at run time.
pub trait ScramLookup: Send + Sync {
    /// The credentials of `user`, or `None` when the user is unknown or has none (e.g. a user imported with
    /// only a bcrypt hash).
    fn credentials(&self, user: &str) -> Option<ScramCredentials>;
}

impl ScramLookup for HashMap<String, ScramCredentials> {
    fn credentials(&self, user: &str) -> Option<ScramCredentials> {
        self.get(user).cloned()
    }
}

/// The SCRAM-SHA-256 method over the users of a [`ScramLookup`].
pub struct ScramSha256 {
    lookup: Arc<dyn ScramLookup>,
    /// Makes the fake credentials of unknown users stable and unguessable.
    secret: [u8; 32],
}

impl ScramSha256 {
    /// Derive credentials for `users` (name -> password) into an in-memory table. Costs one PBKDF2 per user, at
    /// start.
    pub fn new<'a>(users: impl IntoIterator<Item = (&'a String, &'a String)>) -> Self {
        let users: HashMap<String, ScramCredentials> = users
            .into_iter()
            .map(|(name, password)| (name.clone(), ScramCredentials::generate(password.as_bytes())))
            .collect();
        ScramSha256::with_lookup(Arc::new(users))
    }

    /// Look users up in `lookup` at each exchange, so that users added or changed later are seen at once.
    pub fn with_lookup(lookup: Arc<dyn ScramLookup>) -> Self {
        ScramSha256 {
            lookup,
            secret: random(),
        }
    }

    fn credentials(&self, user: &str) -> (ScramCredentials, bool) {
        match self.lookup.credentials(user) {
            Some(c) => (c, true),
            None => {
                let fake = hmac(&self.secret, user.as_bytes());
                (
                    ScramCredentials {
                        salt: fake[..SALT_LEN].to_vec(),
                        iterations: DEFAULT_ITERATIONS,
                        stored_key: hmac(&self.secret, b"no such user"),
                        server_key: [0; 32],
                    },
                    false,
                )
            }
        }
    }
}

impl Authenticator for ScramSha256 {
    fn method(&self) -> &str {
        METHOD
    }

    fn start(&self, data: &[u8]) -> AuthStep {
        let Some((user, client_nonce, client_first_bare)) = parse_client_first(data) else {
            return fail("malformed client-first-message");
        };
        let (credentials, known) = self.credentials(&user);
        let nonce = format!("{client_nonce}{}", B64.encode(random::<18>()));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credentials.salt),
            credentials.iterations
        );
        let exchange = ServerFirstSent {
            user,
            known,
            credentials,
            nonce,
            auth_message_head: format!("{client_first_bare},{server_first}"),
        };
        AuthStep::Continue(Bytes::from(server_first), Box::new(exchange))
    }
}

/// Waiting for the client-final-message.
struct ServerFirstSent {
    user: String,
    known: bool,
    credentials: ScramCredentials,
    nonce: String,
    auth_message_head: String,
}

impl AuthExchange for ServerFirstSent {
    fn step(self: Box<Self>, data: &[u8]) -> AuthStep {
        let Ok(text) = std::str::from_utf8(data) else {
            return fail("client-final-message is not UTF-8");
        };
        let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
            return fail("client-final-message has no proof");
        };
        let mut channel_binding = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            match attr.split_once('=') {
                Some(("c", v)) => channel_binding = Some(v),
                Some(("r", v)) => nonce = Some(v),
                _ => {}
            }
        }
        // "biws" is base64 of "n,,": no channel binding, no authorization identity.
        if channel_binding != Some("biws") || nonce != Some(self.nonce.as_str()) {
            return fail("channel binding or nonce does not match");
        }
        let Ok(proof) = B64.decode(proof) else {
            return fail("proof is not base64");
        };
        let auth_message = format!("{},{without_proof}", self.auth_message_head);
        let signature = hmac(&self.credentials.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return fail("proof has the wrong length");
        }
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
        let stored_key = Sha256::digest(&client_key);
        // Constant time: no timing hint of how much of the key matched.
        let differ = stored_key
            .iter()
            .zip(self.credentials.stored_key)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differ != 0 || !self.known {
            return fail(&format!("wrong proof for user {:?}", self.user));
        }
        let server_signature = hmac(&self.credentials.server_key, auth_message.as_bytes());
        AuthStep::Success {
            user: self.user,
            data: Some(Bytes::from(format!("v={}", B64.encode(server_signature)))),
        }
    }
}

/// `n,,n=user,r=nonce` -> (user, nonce, client-first-message-bare).
fn parse_client_first(data: &[u8]) -> Option<(String, String, String)> {
    let text = std::str::from_utf8(data).ok()?;
    // gs2-header: no channel binding ("n") and no authorization identity.
    let bare = text.strip_prefix("n,,")?;
    let mut user = None;
    let mut nonce = None;
    for attr in bare.split(',') {
        match attr.split_once('=')? {
            ("n", v) => user = Some(unescape_name(v)?),
            ("r", v) if !v.is_empty() => nonce = Some(v.to_string()),
            ("m", _) => return None, // reserved extension
            _ => {}
        }
    }
    Some((user?, nonce?, bare.to_string()))
}

/// SCRAM escapes ',' as "=2C" and '=' as "=3D" in user names.
fn unescape_name(v: &str) -> Option<String> {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3)? {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator fails only on a broken system; a zero nonce then still works, it is just predictable.
    let _ = getrandom::getrandom(&mut bytes);
    bytes
}

fn fail(why: &str) -> AuthStep {
    AuthStep::Failure { why: why.to_string() }
}

/// Salts as base64 text in a JSON file, not as arrays of numbers.
mod b64_bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        B64.decode(text).map_err(serde::de::Error::custom)
    }
}

/// 32-byte keys as base64 text; any other length is an error, not a truncation.
mod b64_key {
    use super::*;

    pub fn serialize<S: serde::Serializer>(key: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(key))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let bytes = super::b64_bytes::deserialize(d)?;
        <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| serde::de::Error::invalid_length(bytes.len(), &"32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side, written from RFC 5802 §3 for this test.
    fn client_final(password: &str, client_first_bare: &str, server_first: &str) -> (String, [u8; 32]) {
        let attrs: HashMap<&str, &str> = server_first.split(',').filter_map(|a| a.split_once('=')).collect();
        let salt = B64.decode(attrs["s"]).unwrap();
        let iterations: u32 = attrs["i"].parse().unwrap();
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={}", attrs["r"]);
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
        let server_signature = hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes());
        (format!("{without_proof},p={}", B64.encode(proof)), server_signature)
    }

    fn run(scram: &ScramSha256, user: &str, password: &str) -> AuthStep {
        let bare = format!("n={user},r=fyko+d2lbbFgONRv9qkxdawL");
        let AuthStep::Continue(server_first, exchange) = scram.start(format!("n,,{bare}").as_bytes()) else {
            panic!("expected server-first");
        };
        let server_first = std::str::from_utf8(&server_first).unwrap();
        assert!(
            server_first.starts_with("r=fyko+d2lbbFgONRv9qkxdawL"),
            "the nonce extends the client's"
        );
        let (final_message, _) = client_final(password, &bare, server_first);
        exchange.step(final_message.as_bytes())
    }

    fn users() -> ScramSha256 {
        let users: HashMap<String, String> = [("user".to_string(), "pencil".to_string())].into();
        ScramSha256::new(&users)
    }

    #[test]
    fn the_right_password_succeeds_and_the_server_proves_itself() {
        let scram = users();
        let bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let AuthStep::Continue(server_first, exchange) = scram.start(format!("n,,{bare}").as_bytes()) else {
            panic!("expected server-first");
        };
        let server_first = std::str::from_utf8(&server_first).unwrap().to_string();
        let (final_message, server_signature) = client_final("pencil", bare, &server_first);
        match exchange.step(final_message.as_bytes()) {
            AuthStep::Success { user, data } => {
                assert_eq!(user, "user");
                let expected = format!("v={}", B64.encode(server_signature));
                assert_eq!(
                    data.as_deref(),
                    Some(expected.as_bytes()),
                    "server-final verifies for the client"
                );
            }
            other => panic!("expected success, got {other:?}"),
        }
    }

    #[test]
    fn a_wrong_password_or_an_unknown_user_fails_at_the_proof() {
        let scram = users();
        assert!(matches!(run(&scram, "user", "pen"), AuthStep::Failure { .. }));
        // An unknown user gets a server-first like anyone else: the failure comes at the proof.
        assert!(matches!(run(&scram, "nobody", "pencil"), AuthStep::Failure { .. }));
    }

    #[test]
    fn malformed_messages_fail_without_panicking() {
        let scram = users();
        for bad in [
            &b""[..],
            b"n,,",
            b"p=tls-unique,,n=user,r=x",
            b"n,,n=user",
            b"n,,n=us=zzer,r=x",
            &[0xff, 0xfe],
        ] {
            assert!(matches!(scram.start(bad), AuthStep::Failure { .. }), "{bad:?}");
        }
        let AuthStep::Continue(_, exchange) = scram.start(b"n,,n=user,r=abc") else {
            panic!("expected server-first");
        };
        assert!(matches!(
            exchange.step(b"c=biws,r=wrong,p=AAAA"),
            AuthStep::Failure { .. }
        ));
    }

    /// RFC 7677 §3's example exchange, with the server nonce the RFC used.
    #[test]
    fn the_rfc_7677_example_verifies_against_derived_credentials() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credentials = ScramCredentials::derive(b"pencil", &salt, 4096);
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let exchange = Box::new(ServerFirstSent {
            user: "user".into(),
            known: true,
            credentials,
            nonce: nonce.into(),
            auth_message_head: format!("n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
        });
        let client_final = format!("c=biws,r={nonce},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        match exchange.step(client_final.as_bytes()) {
            AuthStep::Success { user, data } => {
                assert_eq!(user, "user");
                assert_eq!(
                    data.as_deref(),
                    Some(&b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="[..])
                );
            }
            other => panic!("expected success, got {other:?}"),
        }
    }

    /// A lookup that changes after the method is built, like the user database.
    struct Changing(std::sync::Mutex<HashMap<String, ScramCredentials>>);

    impl ScramLookup for Changing {
        fn credentials(&self, user: &str) -> Option<ScramCredentials> {
            self.0.lock().unwrap().get(user).cloned()
        }
    }

    #[test]
    fn a_lookup_is_asked_at_each_exchange_and_its_salt_and_iterations_are_offered() {
        let lookup = Arc::new(Changing(Default::default()));
        let scram = ScramSha256::with_lookup(lookup.clone());
        assert!(matches!(run(&scram, "later", "secret"), AuthStep::Failure { .. }));
        let credentials = ScramCredentials::derive(b"secret", b"0123456789ab", 5000);
        lookup.0.lock().unwrap().insert("later".into(), credentials);
        let AuthStep::Continue(server_first, _) = scram.start(b"n,,n=later,r=abc") else {
            panic!("expected server-first");
        };
        assert!(std::str::from_utf8(&server_first)
            .unwrap()
            .ends_with(",s=MDEyMzQ1Njc4OWFi,i=5000"));
        assert!(matches!(run(&scram, "later", "secret"), AuthStep::Success { .. }));
        assert!(matches!(run(&scram, "later", "wrong"), AuthStep::Failure { .. }));
    }

    #[test]
    fn credentials_round_trip_through_json_as_base64_and_hide_their_keys_from_debug() {
        let credentials = ScramCredentials::derive(b"pencil", b"salt", 4096);
        let json = serde_json::to_string(&credentials).unwrap();
        assert!(json.contains(r#""salt":"c2FsdA==""#), "{json}");
        let back: ScramCredentials = serde_json::from_str(&json).unwrap();
        assert_eq!(back, credentials);
        let short_key = json.replace(&B64.encode(credentials.server_key), "AAAA");
        assert!(serde_json::from_str::<ScramCredentials>(&short_key).is_err());
        let debug = format!("{credentials:?}");
        assert!(!debug.contains(&format!("{:?}", credentials.stored_key)), "{debug}");
    }

    #[test]
    fn user_names_are_unescaped() {
        assert_eq!(unescape_name("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(unescape_name("bad=2"), None);
    }
}
