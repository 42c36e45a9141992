//! Where the API listens and who may use it, with the checks that turn a bad setting into one line.

use std::net::SocketAddr;

/// How a node serves its REST API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where the API listens for HTTP.
    pub listen: SocketAddr,
    /// A bearer token every request must carry (`Authorization: Bearer TOKEN`).
    pub token: Option<String>,
    /// Users allowed with HTTP basic authentication, as (name, password).
    pub users: Vec<(String, String)>,
    /// Serve the chaos endpoints (killing actors on purpose); off unless asked for.
    pub chaos: bool,
}

impl ApiConfig {
    /// An API on `listen` with no token, no users and no chaos endpoints: open to anyone, which
    /// [`validate`](Self::validate) allows on loopback only.
    pub fn new(listen: SocketAddr) -> ApiConfig {
        ApiConfig {
            listen,
            token: None,
            users: Vec::new(),
            chaos: false,
        }
    }

    /// A token or users are set: every request must authenticate.
    pub(crate) fn needs_auth(&self) -> bool {
        self.token.is_some() || !self.users.is_empty()
    }

    /// An API open to anyone may only listen on loopback; the error says how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        if !self.needs_auth() && !self.listen.ip().is_loopback() {
            return Err(format!(
                "--api-listen {}: an API without authentication may only listen on loopback; set --api-token (or RACTMQ_API_TOKEN) or --api-user, or listen on 127.0.0.1",
                self.listen
            ));
        }
        if self.token.as_deref() == Some("") {
            return Err("--api-token is empty: give a secret, or leave it out".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_api_stays_on_loopback() {
        assert!(ApiConfig::new("127.0.0.1:18083".parse().unwrap()).validate().is_ok());
        let open = ApiConfig::new("0.0.0.0:18083".parse().unwrap());
        assert!(open.validate().unwrap_err().contains("--api-token"));
        let mut guarded = open;
        guarded.token = Some("s3cret".into());
        assert!(guarded.validate().is_ok());
    }
}
