//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5 enhanced authentication method.
//!
//! The broker keeps, per user, only what RFC 5802 §3 calls the stored key and the server key, derived once from
//! the configured password with a random salt; the password itself never leaves this module and never crosses
//! the wire. Two round trips: client-first -> server-first (AUTH 0x18), client-final -> server-final (in
//! CONNACK, or in AUTH 0x00 when re-authenticating). Channel binding is not offered (`n,,` only). An unknown
//! user gets a server-first made from a per-broker secret, so that the exchange does not reveal which user
//! names exist; it fails at the proof like a wrong password.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::auth::{AuthExchange, AuthStep, Authenticator};

type HmacSha256 = Hmac<Sha256>;

pub const METHOD: &str = "SCRAM-SHA-256";
/// PBKDF2 iterations: RFC 7677's minimum.
const ITERATIONS: u32 = 4096;

struct Credentials {
    salt: [u8; 16],
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl Credentials {
    fn derive(password: &[u8], salt: [u8; 16]) -> Self {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, &salt, ITERATIONS, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        Credentials {
            salt,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }
}

/// The SCRAM-SHA-256 method over a fixed set of users.
pub struct ScramSha256 {
    users: HashMap<String, Credentials>,
    /// Makes the fake credentials of unknown users stable and unguessable.
    secret: [u8; 32],
}

impl ScramSha256 {
    /// Derive credentials for `users` (name -> password). Costs one PBKDF2 per user, at start.
    pub fn new<'a>(users: impl IntoIterator<Item = (&'a String, &'a String)>) -> Self {
        let users = users
            .into_iter()
            .map(|(name, password)| (name.clone(), Credentials::derive(password.as_bytes(), random())))
            .collect();
        ScramSha256 {
            users,
            secret: random(),
        }
    }

    fn credentials(&self, user: &str) -> (Credentials, bool) {
        match self.users.get(user) {
            Some(c) => (
                Credentials {
                    salt: c.salt,
                    stored_key: c.stored_key,
                    server_key: c.server_key,
                },
                true,
            ),
            None => {
                let fake = hmac(&self.secret, user.as_bytes());
                let mut salt = [0u8; 16];
                salt.copy_from_slice(&fake[..16]);
                (
                    Credentials {
                        salt,
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
        let server_first = format!("r={nonce},s={},i={ITERATIONS}", B64.encode(credentials.salt));
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
    credentials: Credentials,
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

    #[test]
    fn user_names_are_unescaped() {
        assert_eq!(unescape_name("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(unescape_name("bad=2"), None);
    }
}
