//! JWT authentication: a client presents a signed token (as its password, or as its user name) instead of
//! credentials the broker stores.
//!
//! The token's signature is checked with a configured HMAC secret, PEM public key or JWKS file, restricted to
//! that key's algorithm family; then `exp` and `nbf` (with a small leeway) and any claims the operator requires
//! to equal the client's user name (`%u`) or client id (`%c`). As in EMQX, a token this source cannot verify
//! (not a JWT, or signed with another key) is not its business and the chain asks the next source, while a
//! token it did sign but that is expired or names another client is refused. The token's ACL claim goes to
//! authorization untouched.

mod keys;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Validation};
use serde_json::{Map, Value};

use crate::client::ClientInfo;
use crate::decision::{DenyReason, SourceDecision};
use crate::error::FileError;

/// Which key verifies tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKey {
    /// A shared secret: HS256, HS384 or HS512.
    Hmac(Vec<u8>),
    /// A public key in a PEM file (`-----BEGIN PUBLIC KEY-----`).
    PublicKeyPem {
        /// The PEM file.
        file: PathBuf,
        /// What kind of key it is, which fixes the algorithms accepted.
        family: KeyFamily,
    },
    /// A JSON Web Key Set file (`{"keys": [...]}`): the token header's `kid` picks the key; without one, every
    /// key whose algorithms fit the header is tried. Symmetric (`oct`) keys are refused.
    Jwks(PathBuf),
}

/// The kind of a PEM public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// RSA: RS256/384/512 and PS256/384/512.
    Rsa,
    /// ECDSA: ES256 (P-256) or ES384 (P-384).
    Ec,
    /// Ed25519: EdDSA.
    Ed,
}

/// Where the client puts its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenFrom {
    /// The CONNECT password (the usual place).
    #[default]
    Password,
    /// The CONNECT user name.
    Username,
}

/// A JWT source's configuration. [`JwtConfig::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// The verifying key.
    pub key: JwtKey,
    /// Where the token is.
    pub from: TokenFrom,
    /// Claims that must be strings equal to these values, where `%u` stands for the client's user name and
    /// `%c` for its client id; e.g. `sub = "%u"`. A claim that is missing or differs refuses the client.
    pub require_claims: BTreeMap<String, String>,
    /// The claim holding the client's ACL, passed on untouched. Default `acl`.
    pub acl_claim: String,
    /// The claim that makes the client a superuser when it is `true` (or `"true"`). Default `is_superuser`.
    pub superuser_claim: String,
    /// Refuse tokens without `exp` (default true): a token that never expires cannot be withdrawn.
    pub require_exp: bool,
    /// Clock skew tolerated on `exp` and `nbf`. Default 5 s.
    pub leeway: Duration,
}

impl JwtConfig {
    /// The defaults for tokens verified by `key`.
    pub fn new(key: JwtKey) -> Self {
        JwtConfig {
            key,
            from: TokenFrom::Password,
            require_claims: BTreeMap::new(),
            acl_claim: "acl".into(),
            superuser_claim: "is_superuser".into(),
            require_exp: true,
            leeway: Duration::from_secs(5),
        }
    }
}

/// Why a JWT source could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// A key file could not be read or holds no usable key.
    File(FileError),
    /// The HMAC secret is empty.
    EmptySecret,
}

impl From<FileError> for JwtError {
    fn from(e: FileError) -> Self {
        JwtError::File(e)
    }
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::File(e) => write!(f, "{e}"),
            JwtError::EmptySecret => write!(f, "the JWT HMAC secret is empty"),
        }
    }
}

impl std::error::Error for JwtError {}

/// Verifies tokens against the configured key; cheap enough (microseconds) to run on the reactor.
pub struct JwtSource {
    config: JwtConfig,
    keys: Vec<keys::VerifyingKey>,
}

impl fmt::Debug for JwtSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSource")
            .field("from", &self.config.from)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl JwtSource {
    /// Load the key (reading its file, if any) and check it.
    pub fn new(config: JwtConfig) -> Result<JwtSource, JwtError> {
        let keys = keys::load(&config.key)?;
        Ok(JwtSource { config, keys })
    }

    /// The decision for a client presenting `password` (see the module doc for when it is Ignore or Deny).
    pub fn authenticate(&self, client: &ClientInfo, password: Option<&[u8]>) -> SourceDecision {
        let token = match self.config.from {
            TokenFrom::Password => password.and_then(|p| std::str::from_utf8(p).ok()),
            TokenFrom::Username => client.username.as_deref(),
        };
        let Some(token) = token else {
            return SourceDecision::Ignore;
        };
        // A JWS in compact form has exactly three parts; anything else is someone else's password.
        if token.split('.').count() != 3 {
            return SourceDecision::Ignore;
        }
        let claims = match self.verify(token) {
            Verdict::Valid(claims) => claims,
            Verdict::NotOurs => return SourceDecision::Ignore,
            Verdict::Refused(why) => {
                tracing::debug!(client_id = %client.client_id, why, "JWT refused");
                return SourceDecision::Deny(DenyReason::BadUsernameOrPassword);
            }
        };
        for (claim, template) in &self.config.require_claims {
            let Some(expected) = render(template, client) else {
                return SourceDecision::Deny(DenyReason::BadUsernameOrPassword);
            };
            if claims.get(claim).and_then(Value::as_str) != Some(expected.as_str()) {
                tracing::debug!(client_id = %client.client_id, claim, "JWT claim does not match the client");
                return SourceDecision::Deny(DenyReason::BadUsernameOrPassword);
            }
        }
        let superuser = matches!(claims.get(&self.config.superuser_claim), Some(Value::Bool(true)))
            || claims.get(&self.config.superuser_claim).and_then(Value::as_str) == Some("true");
        SourceDecision::Allow {
            superuser,
            acl: claims.get(&self.config.acl_claim).cloned(),
        }
    }

    fn verify(&self, token: &str) -> Verdict {
        let Ok(header) = decode_header(token) else {
            return Verdict::NotOurs;
        };
        let candidates = self.keys.iter().filter(|k| {
            k.algorithms.contains(&header.alg)
                && match (&header.kid, &k.kid) {
                    (Some(wanted), Some(kid)) => wanted == kid,
                    (Some(_), None) => self.keys.len() == 1,
                    (None, _) => true,
                }
        });
        for key in candidates {
            let mut validation = Validation::new(header.alg);
            validation.algorithms = key.algorithms.clone();
            validation.leeway = self.config.leeway.as_secs();
            validation.validate_exp = true;
            validation.validate_nbf = true;
            validation.validate_aud = false;
            validation.required_spec_claims.clear();
            if self.config.require_exp {
                validation.required_spec_claims.insert("exp".into());
            }
            match decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return Verdict::Valid(data.claims),
                // The claims are checked only after the signature: these are our tokens, and they are bad.
                Err(e) => match e.kind() {
                    ErrorKind::ExpiredSignature => return Verdict::Refused("expired"),
                    ErrorKind::ImmatureSignature => return Verdict::Refused("not valid yet (nbf)"),
                    ErrorKind::MissingRequiredClaim(_) => return Verdict::Refused("no exp claim"),
                    ErrorKind::InvalidClaimFormat(_) => return Verdict::Refused("malformed exp, nbf or sub"),
                    _ => continue,
                },
            }
        }
        Verdict::NotOurs
    }
}

enum Verdict {
    Valid(Map<String, Value>),
    NotOurs,
    Refused(&'static str),
}

/// `%u` -> user name, `%c` -> client id; `None` when `%u` is asked for and the client sent no user name.
fn render(template: &str, client: &ClientInfo) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 2) {
            Some("u") => out.push_str(client.username.as_deref()?),
            Some("c") => out.push_str(&client.client_id),
            _ => {
                out.push('%');
                rest = &rest[i + 1..];
                continue;
            }
        }
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests;
