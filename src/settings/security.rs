//! The `[auth]` section turned into the broker's security configuration: the authentication sources (a
//! Mosquitto password file, JWT, an HTTP service) after the built-in user database, the ACL file and an HTTP
//! authorization service, anonymous access, and flapping detection. Files are read here, at start, so that a bad one stops the node with one
//! line naming it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractmq::parts::auth::authn::AuthnSource;
use ractmq::parts::auth::flapping::FlappingConfig;
use ractmq::parts::auth::http_auth::{HttpAuthConfig, HttpAuthSource};
use ractmq::parts::auth::jwt::{JwtConfig, JwtKey, JwtSource, KeyFamily, TokenFrom};
use ractmq::parts::auth::password_file::ReloadablePasswordFile;
use ractmq::SecurityConfig;

use super::{optional, Settings};

impl Settings {
    /// The broker's security configuration from `[auth]`.
    pub(super) fn security(&self) -> Result<SecurityConfig, String> {
        let a = &self.auth;
        let allow_anonymous = match a.allow_anonymous.as_str() {
            "auto" => None,
            "true" => Some(true),
            "false" => Some(false),
            other => {
                return Err(format!(
                    "auth.allow_anonymous = \"{other}\": must be auto (on unless a source is configured), true or false"
                ))
            }
        };
        let mut sources = Vec::new();
        if let Some(path) = optional(&a.password_file) {
            let file = ReloadablePasswordFile::open(&path).map_err(|e| format!("auth.password_file: {e}"))?;
            sources.push(AuthnSource::PasswordFile(Arc::new(file)));
        }
        if let Some(jwt) = self.jwt()? {
            sources.push(AuthnSource::Jwt(Arc::new(jwt)));
        }
        if let Some(url) = optional(&a.http_url) {
            let config = HttpAuthConfig {
                authn_url: Some(url.clone()),
                ..HttpAuthConfig::default()
            };
            let source = HttpAuthSource::new(config).map_err(|e| format!("auth.http_url = \"{url}\": {e}"))?;
            sources.push(AuthnSource::Http(Arc::new(source)));
        }
        let http_authz = match optional(&a.http_authz_url) {
            None => None,
            Some(url) => {
                let config = HttpAuthConfig {
                    authz_url: Some(url.clone()),
                    ..HttpAuthConfig::default()
                };
                let source =
                    HttpAuthSource::new(config).map_err(|e| format!("auth.http_authz_url = \"{url}\": {e}"))?;
                Some(Arc::new(source))
            }
        };
        let flapping = a.flapping_detect.then(|| FlappingConfig {
            max_count: a.flapping_max_count.max(1),
            window: Duration::from_secs(a.flapping_window_s.max(1)),
            ban_time: Duration::from_secs(a.flapping_ban_s.max(1)),
            ..FlappingConfig::default()
        });
        Ok(SecurityConfig {
            sources,
            user_db: optional(&a.user_db).map(PathBuf::from),
            allow_anonymous,
            acl_file: optional(&a.acl_file).map(PathBuf::from),
            http_authz,
            flapping,
            ..SecurityConfig::default()
        })
    }

    /// The JWT source, if a key is configured (one of a secret, a PEM public key or a JWKS file).
    fn jwt(&self) -> Result<Option<JwtSource>, String> {
        let a = &self.auth;
        let keys = [&a.jwt_secret, &a.jwt_public_key, &a.jwt_jwks];
        let given = keys.iter().filter(|k| !k.is_empty()).count();
        if given > 1 {
            return Err("auth.jwt_secret, auth.jwt_public_key and auth.jwt_jwks: set only one of them".into());
        }
        let from = match a.jwt_from.as_str() {
            "password" => TokenFrom::Password,
            "username" => TokenFrom::Username,
            other => return Err(format!("auth.jwt_from = \"{other}\": must be password or username")),
        };
        let make = |key: JwtKey| {
            let mut config = JwtConfig::new(key);
            config.from = from;
            JwtSource::new(config)
        };
        if let Some(secret) = optional(&a.jwt_secret) {
            return make(JwtKey::Hmac(secret.into_bytes()))
                .map(Some)
                .map_err(|e| format!("auth.jwt_secret: {e}"));
        }
        if let Some(file) = optional(&a.jwt_jwks) {
            return make(JwtKey::Jwks(file.into()))
                .map(Some)
                .map_err(|e| format!("auth.jwt_jwks: {e}"));
        }
        let Some(file) = optional(&a.jwt_public_key) else {
            return Ok(None);
        };
        // The PEM says what kind of key it is: the first family that reads it is the one.
        let mut last = String::new();
        for family in [KeyFamily::Rsa, KeyFamily::Ec, KeyFamily::Ed] {
            let key = JwtKey::PublicKeyPem {
                file: file.clone().into(),
                family,
            };
            match make(key) {
                Ok(source) => return Ok(Some(source)),
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("auth.jwt_public_key: {last}"))
    }
}
