//! Who may connect to ractmq and what they may do once connected.
//!
//! Everything here is computation over files, tables and the clock passed in: the broker's listener asks the
//! authentication chain whether a CONNECT may proceed, hands the client's compiled ACL to its channel, and
//! consults the banned list and the flapping detector before it accepts a socket's CONNECT. Nothing here owns a
//! socket or an actor, so every rule can be tested without a network.

#![deny(missing_docs)]

pub mod authn;
pub mod client;
pub mod decision;
pub mod error;
pub mod http_auth;
pub mod http_authz;
pub mod jwt;
pub mod password;
pub mod password_file;
pub mod user_db;

// Authorization and abuse control.
pub mod acl;
pub mod banned;
pub mod flapping;
pub mod login_throttle;
