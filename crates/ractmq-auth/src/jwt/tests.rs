//! Tokens signed in the test with committed test keys (`testdata/jwt/`), plus one signed by PyJWT.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, get_current_timestamp, Algorithm, EncodingKey, Header};
use serde_json::json;

use super::*;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/jwt").join(name)
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(testdata(name)).unwrap()
}

fn client(username: Option<&str>) -> ClientInfo {
    ClientInfo {
        client_id: "sensor-1".into(),
        username: username.map(str::to_string),
        peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listener: "tcp".into(),
    }
}

fn in_an_hour() -> u64 {
    get_current_timestamp() + 3600
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).unwrap()
}

fn hmac_source(config: impl FnOnce(&mut JwtConfig)) -> JwtSource {
    let mut c = JwtConfig::new(JwtKey::Hmac(b"a shared secret of some length".to_vec()));
    config(&mut c);
    JwtSource::new(c).unwrap()
}

fn hmac_token(alg: Algorithm, claims: Value) -> String {
    sign(
        alg,
        None,
        &EncodingKey::from_secret(b"a shared secret of some length").unwrap(),
        &claims,
    )
}

fn check(source: &JwtSource, token: &str) -> SourceDecision {
    source.authenticate(&client(Some("alice")), Some(token.as_bytes()))
}

const BAD: SourceDecision = SourceDecision::Deny(DenyReason::BadUsernameOrPassword);

#[test]
fn a_valid_hmac_token_allows_with_its_acl_and_superuser_claims() {
    let source = hmac_source(|_| {});
    let acl = json!([{"permission": "allow", "action": "publish", "topic": "a/#"}]);
    let token = hmac_token(Algorithm::HS256, json!({"exp": in_an_hour(), "acl": acl}));
    assert_eq!(
        check(&source, &token),
        SourceDecision::Allow {
            superuser: false,
            acl: Some(acl)
        }
    );

    for superuser in [json!(true), json!("true")] {
        let token = hmac_token(
            Algorithm::HS512,
            json!({"exp": in_an_hour(), "is_superuser": superuser}),
        );
        assert_eq!(
            check(&source, &token),
            SourceDecision::Allow {
                superuser: true,
                acl: None
            }
        );
    }
    let token = hmac_token(Algorithm::HS384, json!({"exp": in_an_hour(), "is_superuser": 1}));
    assert_eq!(
        check(&source, &token),
        SourceDecision::Allow {
            superuser: false,
            acl: None
        }
    );

    let renamed = hmac_source(|c| {
        c.acl_claim = "rules".into();
        c.superuser_claim = "admin".into();
    });
    let token = hmac_token(
        Algorithm::HS256,
        json!({"exp": in_an_hour(), "rules": [1], "admin": true}),
    );
    assert_eq!(
        check(&renamed, &token),
        SourceDecision::Allow {
            superuser: true,
            acl: Some(json!([1]))
        }
    );
}

#[test]
fn tokens_this_source_cannot_verify_are_ignored() {
    let source = hmac_source(|_| {});
    let other_secret = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"another secret").unwrap(),
        &json!({"exp": in_an_hour()}),
    );
    let rsa = sign(
        Algorithm::RS256,
        None,
        &EncodingKey::from_rsa_pem(&pem("rsa-private.pem")).unwrap(),
        &json!({"exp": in_an_hour()}),
    );
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(json!({"exp": in_an_hour()}).to_string());
    let unsigned = format!("{header}.{payload}.");
    for token in [other_secret.as_str(), &rsa, &unsigned, "a password", "a.b.c", "...", ""] {
        assert_eq!(check(&source, token), SourceDecision::Ignore, "{token}");
    }
    assert_eq!(
        source.authenticate(&client(Some("alice")), None),
        SourceDecision::Ignore
    );
    assert_eq!(
        source.authenticate(&client(None), Some(&[0xff, 0x2e, 0x2e])),
        SourceDecision::Ignore
    );
}

#[test]
fn expired_early_or_exp_less_tokens_we_signed_are_refused() {
    let source = hmac_source(|_| {});
    let now = get_current_timestamp();
    assert_eq!(
        check(&source, &hmac_token(Algorithm::HS256, json!({"exp": now - 60}))),
        BAD
    );
    assert_eq!(
        check(
            &source,
            &hmac_token(Algorithm::HS256, json!({"exp": now + 3600, "nbf": now + 600}))
        ),
        BAD
    );
    assert_eq!(
        check(&source, &hmac_token(Algorithm::HS256, json!({"sub": "alice"}))),
        BAD
    );
    assert_eq!(
        check(&source, &hmac_token(Algorithm::HS256, json!({"exp": "tomorrow"}))),
        BAD
    );
    // Within the leeway (5 s) clocks may disagree.
    assert!(matches!(
        check(
            &source,
            &hmac_token(Algorithm::HS256, json!({"exp": now - 2, "nbf": now + 2}))
        ),
        SourceDecision::Allow { .. }
    ));

    let lenient = hmac_source(|c| c.require_exp = false);
    assert!(matches!(
        check(&lenient, &hmac_token(Algorithm::HS256, json!({"sub": "alice"}))),
        SourceDecision::Allow { .. }
    ));
}

#[test]
fn required_claims_must_name_this_client() {
    let source = hmac_source(|c| {
        c.require_claims.insert("sub".into(), "%u".into());
        c.require_claims.insert("clientid".into(), "%c".into());
        c.require_claims.insert("room".into(), "100%".into());
    });
    let claims = |sub: &str, clientid: &str| {
        hmac_token(
            Algorithm::HS256,
            json!({"exp": in_an_hour(), "sub": sub, "clientid": clientid, "room": "100%"}),
        )
    };
    assert!(matches!(
        check(&source, &claims("alice", "sensor-1")),
        SourceDecision::Allow { .. }
    ));
    assert_eq!(check(&source, &claims("bob", "sensor-1")), BAD);
    assert_eq!(check(&source, &claims("alice", "sensor-2")), BAD);
    let token = claims("alice", "sensor-1");
    assert_eq!(
        source.authenticate(&client(None), Some(token.as_bytes())),
        BAD,
        "%u without a user name"
    );
    let missing = hmac_token(Algorithm::HS256, json!({"exp": in_an_hour(), "sub": "alice"}));
    assert_eq!(check(&source, &missing), BAD);
}

#[test]
fn the_token_can_come_in_the_user_name() {
    let source = hmac_source(|c| c.from = TokenFrom::Username);
    let token = hmac_token(Algorithm::HS256, json!({"exp": in_an_hour()}));
    assert!(matches!(
        source.authenticate(&client(Some(&token)), None),
        SourceDecision::Allow { .. }
    ));
    assert_eq!(
        source.authenticate(&client(Some("alice")), Some(token.as_bytes())),
        SourceDecision::Ignore
    );
}

#[test]
fn pem_public_keys_verify_their_own_family_only() {
    let rsa = JwtSource::new(JwtConfig::new(JwtKey::PublicKeyPem {
        file: testdata("rsa-public.pem"),
        family: KeyFamily::Rsa,
    }))
    .unwrap();
    let rsa_private = EncodingKey::from_rsa_pem(&pem("rsa-private.pem")).unwrap();
    let claims = json!({"exp": in_an_hour()});
    for alg in [Algorithm::RS256, Algorithm::PS512] {
        assert!(matches!(
            check(&rsa, &sign(alg, None, &rsa_private, &claims)),
            SourceDecision::Allow { .. }
        ));
    }
    // The classic confusion: HS256 with the public key as the secret.
    let confused = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(&pem("rsa-public.pem")).unwrap(),
        &claims,
    );
    assert_eq!(check(&rsa, &confused), SourceDecision::Ignore);
    let other = EncodingKey::from_rsa_pem(&pem("other-rsa-private.pem")).unwrap();
    assert_eq!(
        check(&rsa, &sign(Algorithm::RS256, None, &other, &claims)),
        SourceDecision::Ignore
    );

    let ec = JwtSource::new(JwtConfig::new(JwtKey::PublicKeyPem {
        file: testdata("ec-public.pem"),
        family: KeyFamily::Ec,
    }))
    .unwrap();
    let ec_private = EncodingKey::from_ec_pem(&pem("ec-private.pem")).unwrap();
    assert!(matches!(
        check(&ec, &sign(Algorithm::ES256, None, &ec_private, &claims)),
        SourceDecision::Allow { .. }
    ));
    assert_eq!(
        check(&ec, &sign(Algorithm::RS256, None, &rsa_private, &claims)),
        SourceDecision::Ignore
    );
}

#[test]
fn a_jwks_picks_the_key_by_kid() {
    let source = JwtSource::new(JwtConfig::new(JwtKey::Jwks(testdata("jwks.json")))).unwrap();
    let rsa_private = EncodingKey::from_rsa_pem(&pem("rsa-private.pem")).unwrap();
    let ec_private = EncodingKey::from_ec_pem(&pem("ec-private.pem")).unwrap();
    let claims = json!({"exp": in_an_hour()});
    let allowed = |token: &str| matches!(check(&source, token), SourceDecision::Allow { .. });

    assert!(allowed(&sign(Algorithm::RS256, Some("rsa-1"), &rsa_private, &claims)));
    assert!(allowed(&sign(Algorithm::ES256, Some("ec-1"), &ec_private, &claims)));
    assert!(
        allowed(&sign(Algorithm::ES256, None, &ec_private, &claims)),
        "no kid: keys that fit are tried"
    );
    // The JWK says RS256: another RSA algorithm is not accepted with it.
    assert!(!allowed(&sign(Algorithm::RS512, Some("rsa-1"), &rsa_private, &claims)));
    assert!(!allowed(&sign(Algorithm::RS256, Some("ec-1"), &rsa_private, &claims)));
    assert!(!allowed(&sign(Algorithm::RS256, Some("rsa-2"), &rsa_private, &claims)));
    let other = EncodingKey::from_rsa_pem(&pem("other-rsa-private.pem")).unwrap();
    assert_eq!(
        check(&source, &sign(Algorithm::RS256, Some("rsa-1"), &other, &claims)),
        SourceDecision::Ignore
    );
}

#[test]
fn a_token_signed_by_pyjwt_verifies_with_the_pem_and_the_jwks() {
    let token = std::fs::read_to_string(testdata("pyjwt-rs256.token")).unwrap();
    let token = token.trim();
    let mut config = JwtConfig::new(JwtKey::Jwks(testdata("jwks.json")));
    config.require_claims.insert("sub".into(), "%u".into());
    config.require_claims.insert("clientid".into(), "%c".into());
    let jwks = JwtSource::new(config.clone()).unwrap();
    let expected = SourceDecision::Allow {
        superuser: false,
        acl: Some(json!({"pub": ["sensors/alice/#"]})),
    };
    assert_eq!(check(&jwks, token), expected);
    config.key = JwtKey::PublicKeyPem {
        file: testdata("rsa-public.pem"),
        family: KeyFamily::Rsa,
    };
    assert_eq!(check(&JwtSource::new(config).unwrap(), token), expected);
}

#[test]
fn bad_key_configuration_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cases = [
        (
            JwtKey::PublicKeyPem {
                file: dir.path().join("missing.pem"),
                family: KeyFamily::Rsa,
            },
            "cannot read",
        ),
        (
            JwtKey::PublicKeyPem {
                file: testdata("ec-public.pem"),
                family: KeyFamily::Rsa,
            },
            "not a PEM public key of the configured kind",
        ),
        (
            JwtKey::Jwks(write("broken.json", "{\"keys\": [\n  {\"kty\": \n")),
            "not a JWKS",
        ),
        (
            JwtKey::Jwks(write(
                "oct.json",
                r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}"#,
            )),
            "key 1 (kid \"s\"): symmetric",
        ),
        (JwtKey::Jwks(write("empty.json", r#"{"keys": []}"#)), "no signature key"),
        (
            JwtKey::Jwks(write(
                "mismatch.json",
                &std::fs::read_to_string(testdata("jwks.json"))
                    .unwrap()
                    .replace("\"ES256\"", "\"RS256\""),
            )),
            "does not fit the key type",
        ),
    ];
    for (key, message) in cases {
        let err = JwtSource::new(JwtConfig::new(key)).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains(message), "{shown}");
        assert_eq!(shown.lines().count(), 1, "{shown}");
    }
    assert_eq!(
        JwtSource::new(JwtConfig::new(JwtKey::Hmac(Vec::new()))).unwrap_err(),
        JwtError::EmptySecret
    );
}

#[test]
fn templates_render_user_and_client() {
    let c = client(Some("alice"));
    assert_eq!(render("%u@%c", &c).as_deref(), Some("alice@sensor-1"));
    assert_eq!(render("100% %x %é %", &c).as_deref(), Some("100% %x %é %"));
    assert_eq!(render("%u", &client(None)), None);
}
