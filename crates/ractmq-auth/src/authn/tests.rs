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

#[test]
fn deny_reasons_map_to_connack_codes() {
    assert_eq!(DenyReason::BadUsernameOrPassword.v5_reason_code(), 0x86);
    assert_eq!(DenyReason::NotAuthorized.v5_reason_code(), 0x87);
    assert_eq!(DenyReason::BadUsernameOrPassword.v3_return_code(), 4);
    assert_eq!(DenyReason::NotAuthorized.v3_return_code(), 5);
}
