//! The checks a CONNECT passes before a session is attached, and the CONNACK they lead to.
//!
//! EMQX runs CONNECT through a pipeline of small named checks, each able to refuse with a reason code; this
//! module is that pipeline for the rules that need no outside state (client id, expiry, will, capabilities).
//! Authentication and the session lookup come after it, in the broker.

use std::sync::Arc;

use ractmq_codec::{reason, ConnAck, ConnAckProperties, Connect, Protocol};

use crate::config::Limits;

/// A CONNECT that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The protocol level of the CONNECT.
    pub protocol: Protocol,
    /// The client identifier: the client's, or the one the broker assigned.
    pub client_id: Arc<str>,
    /// The broker chose the client id (5.0 tells the client in CONNACK).
    pub assigned_client_id: bool,
    /// Clean Start (5.0) or Clean Session (3.x) as the client sent it.
    pub clean_start: bool,
    /// Seconds the session outlives the connection; `u32::MAX` means never expires.
    pub session_expiry: u32,
    /// The keepalive in force: the client's, or the Server Keep Alive (5.0).
    pub keep_alive: u16,
    /// The broker imposed its own keepalive, to be announced in CONNACK.
    pub server_keep_alive: Option<u16>,
    /// The client asked for Response Information.
    pub wants_response_information: bool,
    /// Set by the broker after an enhanced authentication: the method and the data for CONNACK.
    pub authentication: Option<(String, Option<bytes::Bytes>)>,
}

/// Run the checks. `Err` carries the 5.0 reason code for the refusing CONNACK. `assign_id` is called only
/// when the broker must choose a client id.
pub fn check_connect(connect: &Connect, limits: &Limits, assign_id: impl FnOnce() -> String) -> Result<Accepted, u8> {
    let protocol = connect.protocol.ok_or(reason::UNSUPPORTED_PROTOCOL_VERSION)?;
    let (client_id, assigned) = client_id(connect, protocol, limits, assign_id)?;
    if let Some(will) = &connect.will {
        if will.qos > limits.max_qos {
            return Err(reason::QOS_NOT_SUPPORTED);
        }
        if will.retain && !limits.retain_available {
            return Err(reason::RETAIN_NOT_SUPPORTED);
        }
    }
    if let (Protocol::V5, Some(redirect)) = (protocol, &limits.redirect) {
        return Err(if redirect.permanent {
            reason::SERVER_MOVED
        } else {
            reason::USE_ANOTHER_SERVER
        });
    }
    let session_expiry = match protocol {
        Protocol::V5 => connect.properties.session_expiry_interval.unwrap_or(0),
        // 3.x persistent sessions do not expire by the protocol; the operator's cap still applies.
        _ if connect.clean_start => 0,
        _ => u32::MAX,
    }
    .min(limits.max_session_expiry);
    // A cap, as Mosquitto's max_keepalive: a 5.0 client asking for more (or for none) is told the cap.
    let server_keep_alive = limits
        .server_keep_alive
        .filter(|&cap| protocol.is_v5() && (connect.keep_alive == 0 || connect.keep_alive > cap));
    Ok(Accepted {
        protocol,
        client_id: client_id.into(),
        assigned_client_id: assigned,
        clean_start: connect.clean_start,
        session_expiry,
        keep_alive: server_keep_alive.unwrap_or(connect.keep_alive),
        server_keep_alive,
        wants_response_information: connect.properties.request_response_information == Some(1),
        authentication: None,
    })
}

fn client_id(
    connect: &Connect,
    protocol: Protocol,
    limits: &Limits,
    assign_id: impl FnOnce() -> String,
) -> Result<(String, bool), u8> {
    if connect.client_id.len() > limits.max_client_id_len {
        return Err(reason::CLIENT_IDENTIFIER_NOT_VALID);
    }
    if !connect.client_id.is_empty() {
        return Ok((connect.client_id.clone(), false));
    }
    match protocol {
        // 3.1 requires 1 to 23 characters.
        Protocol::V3_1 => Err(reason::CLIENT_IDENTIFIER_NOT_VALID),
        // 3.1.1: an empty id only with a clean session [MQTT-3.1.3-7, 3.1.3-8].
        Protocol::V3_1_1 if !connect.clean_start => Err(reason::CLIENT_IDENTIFIER_NOT_VALID),
        _ => Ok((assign_id(), true)),
    }
}

/// The CONNACK for an accepted connection, with the 5.0 capability flags taken from `limits`.
pub fn connack(accepted: &Accepted, session_present: bool, limits: &Limits) -> ConnAck {
    let mut properties = ConnAckProperties::default();
    if accepted.protocol.is_v5() {
        properties.receive_maximum = Some(limits.receive_maximum);
        properties.maximum_packet_size = Some(limits.max_packet_size);
        properties.topic_alias_maximum = Some(limits.topic_alias_maximum);
        if limits.max_qos < ractmq_codec::QoS::ExactlyOnce {
            properties.maximum_qos = Some(limits.max_qos as u8);
        }
        if !limits.retain_available {
            properties.retain_available = Some(false);
        }
        if !limits.shared_subscriptions {
            properties.shared_subscription_available = Some(false);
        }
        if !limits.wildcard_subscriptions {
            properties.wildcard_subscription_available = Some(false);
        }
        if !limits.subscription_identifiers {
            properties.subscription_identifiers_available = Some(false);
        }
        if accepted.assigned_client_id {
            properties.assigned_client_identifier = Some(accepted.client_id.to_string());
        }
        properties.server_keep_alive = accepted.server_keep_alive;
        if let Some((method, data)) = &accepted.authentication {
            properties.authentication_method = Some(method.clone());
            properties.authentication_data = data.clone();
        }
        if accepted.wants_response_information {
            properties.response_information = limits
                .response_information
                .as_ref()
                .map(|template| template.replace("{clientid}", &accepted.client_id));
        }
        // Tell the client when the broker granted less than it asked for.
        if accepted.session_expiry != 0 {
            properties.session_expiry_interval = Some(accepted.session_expiry);
        }
    }
    ConnAck {
        session_present,
        reason: reason::SUCCESS,
        properties,
    }
}

/// The CONNACK that refuses a connection with `reason_code` (naming the other server of a redirect).
pub fn refusal(reason_code: u8, limits: &Limits) -> ConnAck {
    let mut properties = ConnAckProperties::default();
    if matches!(reason_code, reason::USE_ANOTHER_SERVER | reason::SERVER_MOVED) {
        properties.server_reference = limits.redirect.as_ref().map(|r| r.reference.clone());
    }
    ConnAck {
        session_present: false,
        reason: reason_code,
        properties,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractmq_codec::{ConnectProperties, QoS, Will};

    fn connect(protocol: Protocol, id: &str, clean: bool) -> Connect {
        Connect {
            protocol: Some(protocol),
            clean_start: clean,
            client_id: id.into(),
            keep_alive: 30,
            ..Connect::default()
        }
    }

    fn assign() -> String {
        "auto-1".into()
    }

    #[test]
    fn empty_client_id_rules_per_level() {
        let l = Limits::default();
        assert_eq!(
            check_connect(&connect(Protocol::V3_1, "", true), &l, assign),
            Err(reason::CLIENT_IDENTIFIER_NOT_VALID)
        );
        assert_eq!(
            check_connect(&connect(Protocol::V3_1_1, "", false), &l, assign),
            Err(reason::CLIENT_IDENTIFIER_NOT_VALID)
        );
        let ok = check_connect(&connect(Protocol::V3_1_1, "", true), &l, assign).unwrap();
        assert_eq!(&*ok.client_id, "auto-1");
        let v5 = check_connect(&connect(Protocol::V5, "", false), &l, assign).unwrap();
        assert!(v5.assigned_client_id);
        let ack = connack(&v5, false, &l);
        assert_eq!(ack.properties.assigned_client_identifier.as_deref(), Some("auto-1"));
    }

    #[test]
    fn session_expiry_follows_the_level() {
        let l = Limits::default();
        let a = check_connect(&connect(Protocol::V3_1_1, "c", false), &l, assign).unwrap();
        assert_eq!(a.session_expiry, u32::MAX);
        let a = check_connect(&connect(Protocol::V3_1_1, "c", true), &l, assign).unwrap();
        assert_eq!(a.session_expiry, 0);
        let mut c = connect(Protocol::V5, "c", true);
        c.properties = ConnectProperties {
            session_expiry_interval: Some(60),
            ..Default::default()
        };
        let capped = Limits {
            max_session_expiry: 30,
            ..Limits::default()
        };
        let a = check_connect(&c, &capped, assign).unwrap();
        assert_eq!(a.session_expiry, 30);
        assert_eq!(connack(&a, false, &capped).properties.session_expiry_interval, Some(30));
    }

    #[test]
    fn will_beyond_capabilities_is_refused() {
        let l = Limits {
            max_qos: QoS::AtLeastOnce,
            retain_available: false,
            ..Limits::default()
        };
        let mut c = connect(Protocol::V5, "c", true);
        c.will = Some(Will {
            topic: "w".into(),
            qos: QoS::ExactlyOnce,
            ..Will::default()
        });
        assert_eq!(check_connect(&c, &l, assign), Err(reason::QOS_NOT_SUPPORTED));
        c.will = Some(Will {
            topic: "w".into(),
            retain: true,
            ..Will::default()
        });
        assert_eq!(check_connect(&c, &l, assign), Err(reason::RETAIN_NOT_SUPPORTED));
    }

    #[test]
    fn overlong_client_id_is_refused() {
        let l = Limits {
            max_client_id_len: 4,
            ..Limits::default()
        };
        assert_eq!(
            check_connect(&connect(Protocol::V3_1_1, "12345", true), &l, assign),
            Err(reason::CLIENT_IDENTIFIER_NOT_VALID)
        );
    }
}
