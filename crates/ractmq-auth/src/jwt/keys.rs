//! The keys a JWT source verifies with, each with the algorithms it may be used for.
//!
//! A key is bound to its algorithm family when it is loaded, never by the token: a token whose header names
//! another family (the classic "alg: HS256 signed with the RSA public key as secret", or "alg: none") finds
//! no key to check it and is not this source's.

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::{JwtError, JwtKey, KeyFamily};
use crate::error::FileError;
use crate::password_file::read_bounded;

/// More keys than this in a JWKS file is a mistake, and each would be tried for a token without `kid`.
const MAX_JWKS_KEYS: usize = 64;

const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
const EC: &[Algorithm] = &[Algorithm::ES256, Algorithm::ES384];
const ED: &[Algorithm] = &[Algorithm::EdDSA];

/// One key and what it may verify.
pub(super) struct VerifyingKey {
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
    /// The JWKS `kid`, which a token's header uses to pick its key.
    pub kid: Option<String>,
}

/// Load the configured key or keys.
pub(super) fn load(key: &JwtKey) -> Result<Vec<VerifyingKey>, JwtError> {
    match key {
        JwtKey::Hmac(secret) => {
            if secret.is_empty() {
                return Err(JwtError::EmptySecret);
            }
            let key = DecodingKey::from_secret(secret).map_err(|_| JwtError::EmptySecret)?;
            Ok(vec![VerifyingKey {
                key,
                algorithms: HMAC.to_vec(),
                kid: None,
            }])
        }
        JwtKey::PublicKeyPem { file, family } => {
            let pem = read_bounded(file)?;
            let (key, algorithms) = match family {
                KeyFamily::Rsa => (DecodingKey::from_rsa_pem(pem.as_bytes()), RSA),
                KeyFamily::Ec => (DecodingKey::from_ec_pem(pem.as_bytes()), EC),
                KeyFamily::Ed => (DecodingKey::from_ed_pem(pem.as_bytes()), ED),
            };
            let key = key.map_err(|e| {
                FileError::at(
                    file,
                    0,
                    format!("not a PEM public key of the configured kind ({family:?}): {e}"),
                )
            })?;
            Ok(vec![VerifyingKey {
                key,
                algorithms: algorithms.to_vec(),
                kid: None,
            }])
        }
        JwtKey::Jwks(file) => load_jwks(file),
    }
}

fn load_jwks(file: &Path) -> Result<Vec<VerifyingKey>, JwtError> {
    let text = read_bounded(file)?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| {
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        FileError::at(file, e.line(), format!("not a JWKS ({{\"keys\": [...]}}): {message}"))
    })?;
    if set.keys.len() > MAX_JWKS_KEYS {
        return Err(FileError::at(file, 0, format!("more than {MAX_JWKS_KEYS} keys")).into());
    }
    let mut keys = Vec::with_capacity(set.keys.len());
    for (index, jwk) in set.keys.iter().enumerate() {
        let name = match &jwk.common.key_id {
            Some(kid) => format!("key {} (kid {kid:?})", index + 1),
            None => format!("key {}", index + 1),
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue; // an encryption key in the same set: not for signatures
        }
        let algorithms = jwk_algorithms(jwk).map_err(|why| FileError::at(file, 0, format!("{name}: {why}")))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| FileError::at(file, 0, format!("{name}: {e}")))?;
        keys.push(VerifyingKey {
            key,
            algorithms,
            kid: jwk.common.key_id.clone(),
        });
    }
    if keys.is_empty() {
        return Err(FileError::at(file, 0, "no signature key in the set").into());
    }
    Ok(keys)
}

/// The algorithms a JWK may verify: its `alg` if it names one, else every one its key type allows.
fn jwk_algorithms(jwk: &Jwk) -> Result<Vec<Algorithm>, String> {
    let by_type: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return Err("unsupported elliptic curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(_) => ED,
        // A shared secret in a file meant for public keys would let anyone who can read it sign tokens.
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (oct) keys are not accepted in a JWKS; configure an HMAC secret".into())
        }
        _ => return Err("unsupported key type".into()),
    };
    match jwk.common.key_algorithm {
        None => Ok(by_type.to_vec()),
        Some(named) => match Algorithm::try_from(named) {
            Ok(alg) if by_type.contains(&alg) => Ok(vec![alg]),
            _ => Err(format!("alg {named:?} does not fit the key type")),
        },
    }
}
