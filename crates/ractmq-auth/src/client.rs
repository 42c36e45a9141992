//! The facts about a connecting client that authentication and authorization rules may look at.

use std::net::IpAddr;

/// Who is asking: what the client sent in CONNECT and where it connected from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client identifier (assigned by the broker when the client sent an empty one).
    pub client_id: String,
    /// The user name from CONNECT, or the one a source assigned (a certificate's CN, a JWT subject).
    pub username: Option<String>,
    /// The peer's address.
    pub peer: IpAddr,
    /// The name of the listener the client connected to (`tcp`, `tls`, `ws`, `wss`, or a configured name).
    pub listener: String,
}

/// A client for tests: user name (if any), client id, address and listener.
#[cfg(test)]
pub(crate) fn test_client(user: Option<&str>, id: &str, ip: &str, listener: &str) -> ClientInfo {
    ClientInfo {
        client_id: id.into(),
        username: user.map(Into::into),
        peer: ip.parse().unwrap(),
        listener: listener.into(),
    }
}
