//! The chain's rules, with real sources on temporary files.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::password_file::ReloadablePasswordFile;

const MOSQUITTO: &str = include_str!("../../testdata/mosquitto.passwd");

pub(super) fn creds(username: Option<&str>, password: Option<&[u8]>) -> ConnectCredentials {
    ConnectCredentials {
        client: ClientInfo {
            client_id: "sensor-1".into(),
            username: username.map(str::to_string),
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            listener: "tcp".into(),
        },
        password: password.map(<[u8]>::to_vec),
    }
}

pub(super) fn allowed(superuser: bool) -> AuthnOutcome {
    AuthnOutcome::Allowed { superuser, acl: None }
}

const BAD: AuthnOutcome = AuthnOutcome::Denied(DenyReason::BadUsernameOrPassword);

/// A built-in database with `root` (superuser) and `alice`, and Mosquitto's file with alice, bob, carol, dave.
pub(super) fn built_in_and_file(dir: &tempfile::TempDir) -> (AuthnSource, AuthnSource) {
    let db = UserDb::open(dir.path().join("users.json")).unwrap();
    db.add("root", b"toor", true).unwrap();
    db.add("alice", b"from the database", false).unwrap();
    let path = dir.path().join("passwd");
    std::fs::write(&path, MOSQUITTO).unwrap();
    let file = ReloadablePasswordFile::open(&path).unwrap();
    (
        AuthnSource::BuiltIn(Arc::new(db)),
        AuthnSource::PasswordFile(Arc::new(file)),
    )
}

#[tokio::test]
async fn anonymous_clients_follow_allow_anonymous_and_its_default() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = built_in_and_file(&dir);
    let anonymous = creds(None, None);

    let open = AuthnChain::default();
    assert!(open.allow_anonymous);
    assert_eq!(open.authenticate(&anonymous).await, allowed(false));
    // No sources and anonymous allowed: whatever was presented gets in, as before authentication existed.
    assert_eq!(open.authenticate(&creds(Some("x"), Some(b"y"))).await, allowed(false));

    let closed = AuthnChain::new(vec![db.clone()]);
    assert!(
        !closed.allow_anonymous,
        "a source turns anonymous access off by default"
    );
    assert_eq!(
        closed.authenticate(&anonymous).await,
        AuthnOutcome::Denied(DenyReason::NotAuthorized)
    );

    let overridden = AuthnChain::new(vec![db]).with_allow_anonymous(true);
    assert_eq!(overridden.authenticate(&anonymous).await, allowed(false));
    // ... but credentials nobody vouches for are still refused.
    assert_eq!(overridden.authenticate(&creds(Some("x"), Some(b"y"))).await, BAD);

    let none_but_closed = AuthnChain::default().with_allow_anonymous(false);
    assert_eq!(none_but_closed.authenticate(&creds(Some("x"), Some(b"y"))).await, BAD);
}

#[tokio::test]
async fn sources_are_asked_in_order_until_one_decides() {
    let dir = tempfile::tempdir().unwrap();
    let (db, file) = built_in_and_file(&dir);
    let chain = AuthnChain::new(vec![db, file]);

    assert_eq!(
        chain.authenticate(&creds(Some("root"), Some(b"toor"))).await,
        allowed(true)
    );
    // alice is in both: the database answers first, and its deny is final.
    assert_eq!(
        chain
            .authenticate(&creds(Some("alice"), Some(b"from the database")))
            .await,
        allowed(false)
    );
    assert_eq!(
        chain.authenticate(&creds(Some("alice"), Some(b"correct horse"))).await,
        BAD
    );
    // carol is only in the file.
    assert_eq!(
        chain.authenticate(&creds(Some("carol"), Some(b"secret"))).await,
        allowed(false)
    );
    assert_eq!(chain.authenticate(&creds(Some("carol"), Some(b"wrong"))).await, BAD);
    // Nobody knows mallory.
    assert_eq!(chain.authenticate(&creds(Some("mallory"), Some(b"x"))).await, BAD);
}

#[tokio::test]
async fn a_known_user_without_a_password_is_refused_and_a_password_without_a_user_is_not_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let (db, file) = built_in_and_file(&dir);
    for source in [db, file] {
        let req = creds(Some("alice"), None);
        assert_eq!(
            source.authenticate(&req).await,
            SourceDecision::Deny(DenyReason::BadUsernameOrPassword),
            "{source:?}"
        );
        assert_eq!(
            source.authenticate(&creds(Some("nobody"), None)).await,
            SourceDecision::Ignore
        );
        assert_eq!(
            source.authenticate(&creds(None, Some(b"toor"))).await,
            SourceDecision::Ignore
        );
    }
}

#[tokio::test]
async fn a_reloaded_password_file_applies_to_the_next_login() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    std::fs::write(&path, "").unwrap();
    let file = Arc::new(ReloadablePasswordFile::open(&path).unwrap());
    let chain = AuthnChain::new(vec![AuthnSource::PasswordFile(file.clone())]);
    let carol = creds(Some("carol"), Some(b"secret"));
    assert_eq!(chain.authenticate(&carol).await, BAD);
    std::fs::write(&path, MOSQUITTO).unwrap();
    file.reload().unwrap();
    assert_eq!(chain.authenticate(&carol).await, allowed(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_logins_queues_for_the_hash_checks_and_all_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (db, file) = built_in_and_file(&dir);
    let chain = Arc::new(AuthnChain::new(vec![db, file]));
    let logins: Vec<_> = (0..32)
        .map(|i| {
            let chain = chain.clone();
            tokio::spawn(async move {
                let (user, password): (&str, &[u8]) = if i % 2 == 0 {
                    ("root", b"toor")
                } else {
                    ("carol", b"secret")
                };
                chain.authenticate(&creds(Some(user), Some(password))).await
            })
        })
        .collect();
    for (i, login) in logins.into_iter().enumerate() {
        assert_eq!(login.await.unwrap(), allowed(i % 2 == 0));
    }
}

#[test]
fn deny_reasons_map_to_connack_codes() {
    assert_eq!(DenyReason::BadUsernameOrPassword.v5_reason_code(), 0x86);
    assert_eq!(DenyReason::NotAuthorized.v5_reason_code(), 0x87);
    assert_eq!(DenyReason::BadUsernameOrPassword.v3_return_code(), 4);
    assert_eq!(DenyReason::NotAuthorized.v3_return_code(), 5);
}

/// The whole chain: built-in database, password file, JWT, HTTP service, in that order.
mod whole_chain {
    use std::net::SocketAddr;

    use axum::routing::post;
    use axum::{Json, Router};
    use jsonwebtoken::{encode, get_current_timestamp, EncodingKey, Header};
    use serde_json::json;

    use super::*;
    use crate::http_auth::{HttpAuthConfig, HttpAuthSource};
    use crate::jwt::{JwtConfig, JwtKey, JwtSource};

    const SECRET: &[u8] = b"the chain's jwt secret";

    /// What the case shows, user name, password, expected outcome.
    type Case = (&'static str, Option<&'static str>, Option<Vec<u8>>, AuthnOutcome);

    /// Allows `dora` with password `explorer` as a superuser, denies `eve`, ignores everyone else.
    async fn http_service() -> SocketAddr {
        let app = Router::new().route(
            "/authn",
            post(|Json(body): Json<Value>| async move {
                let answer = match (body["username"].as_str(), body["password"].as_str()) {
                    (Some("dora"), Some("explorer")) => json!({"result": "allow", "is_superuser": true}),
                    (Some("eve"), _) => json!({"result": "deny"}),
                    _ => json!({"result": "ignore"}),
                };
                Json(answer)
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn token(claims: Value) -> Vec<u8> {
        encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET).unwrap())
            .unwrap()
            .into_bytes()
    }

    #[tokio::test]
    async fn each_source_answers_for_its_own_clients_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (db, file) = built_in_and_file(&dir);
        let mut jwt = JwtConfig::new(JwtKey::Hmac(SECRET.to_vec()));
        jwt.require_claims.insert("sub".into(), "%u".into());
        let jwt = AuthnSource::Jwt(Arc::new(JwtSource::new(jwt).unwrap()));
        let addr = http_service().await;
        let http = HttpAuthSource::new(HttpAuthConfig {
            authn_url: Some(format!("http://{addr}/authn")),
            ..HttpAuthConfig::default()
        })
        .unwrap();
        let chain = AuthnChain::new(vec![db, file, jwt, AuthnSource::Http(Arc::new(http))]);
        assert!(!chain.allow_anonymous);

        let exp = get_current_timestamp() + 3600;
        let acl = json!({"publish": ["frank/#"]});
        let cases: Vec<Case> = vec![
            (
                "built-in superuser",
                Some("root"),
                Some(b"toor".to_vec()),
                allowed(true),
            ),
            (
                "built-in wrong password stops the chain",
                Some("alice"),
                Some(b"correct horse".to_vec()),
                BAD,
            ),
            (
                "password file",
                Some("bob"),
                Some("p@ss:w0rd ünï".as_bytes().to_vec()),
                allowed(false),
            ),
            ("password file wrong password", Some("bob"), Some(b"nope".to_vec()), BAD),
            (
                "JWT with its ACL",
                Some("frank"),
                Some(token(json!({"sub": "frank", "exp": exp, "acl": acl}))),
                AuthnOutcome::Allowed {
                    superuser: false,
                    acl: Some(acl.clone()),
                },
            ),
            (
                "JWT naming someone else",
                Some("frank"),
                Some(token(json!({"sub": "root", "exp": exp}))),
                BAD,
            ),
            ("HTTP allows", Some("dora"), Some(b"explorer".to_vec()), allowed(true)),
            (
                "HTTP denies",
                Some("eve"),
                Some(b"x".to_vec()),
                AuthnOutcome::Denied(DenyReason::NotAuthorized),
            ),
            ("everyone ignores", Some("mallory"), Some(b"x".to_vec()), BAD),
            ("anonymous", None, None, AuthnOutcome::Denied(DenyReason::NotAuthorized)),
        ];
        for (what, user, password, expected) in cases {
            let req = ConnectCredentials {
                client: creds(user, None).client,
                password,
            };
            assert_eq!(chain.authenticate(&req).await, expected, "{what}");
        }
    }
}
