//! Outside the crate's own unit tests (which hash at the minimum cost to stay fast), new password hashes use
//! the full cost. One real hash: the price of knowing the fast setting never ships.

use ractmq_auth::password::{hash_password, verify_password};

#[test]
fn new_hashes_use_owasp_argon2id_cost() {
    let hash = hash_password(b"correct horse").unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    assert_eq!(verify_password(&hash, b"correct horse"), Ok(true));
}
