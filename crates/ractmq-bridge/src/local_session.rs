//! A bridge's session on the local broker, `$bridge/NAME`: the client a pump connects with (persistent, never
//! expiring: it is the bridge's buffer), and ending it with the messages buffered in it when the bridge is
//! deleted (one in-process connection with clean start and no expiry, which the broker ends like any client's).

use std::time::{Duration, Instant};

use ractmq_broker::BrokerView;
use ractmq_codec::Protocol;

use crate::client::{Client, ClientOptions, Event};
use crate::config;
use crate::link::Link;

/// The client a bridge's pump is on the local broker, taking at most `window` QoS 1/2 messages at once.
pub(crate) fn client<T>(bridge: &str, window: u16) -> Client<T> {
    Client::new(ClientOptions {
        client_id: config::local_client_id(bridge),
        protocol: Protocol::V5,
        clean_start: false,
        session_expiry: u32::MAX,
        keep_alive: 0,
        username: None,
        password: None,
        receive_maximum: window,
    })
}

/// What `bridge`'s local session is subscribed to that `forward` no longer names. The session keeps its
/// subscriptions across the bridge's restarts, so a configuration edited to forward less (over REST, or in
/// the configuration file before a restart) would go on buffering what it dropped: the pump unsubscribes
/// these when it connects.
pub(crate) fn stale(view: &BrokerView, bridge: &str, forward: &[String]) -> Vec<String> {
    let held = view
        .subscription_filters(&config::local_client_id(bridge))
        .unwrap_or_default();
    held.into_iter().filter(|f| !forward.contains(f)).collect()
}

/// What the local broker's answer to a bridge's session means.
pub(crate) enum LocalEnd {
    /// The node is stopping (its drain disconnected the session, or it refuses new ones): the pump ends
    /// normally, not into a restart the node would refuse again.
    NodeStopping,
    /// Anything else: the pump fails, and its actor is restarted.
    Failed(String),
}

impl From<crate::client::ClientError> for LocalEnd {
    fn from(e: crate::client::ClientError) -> LocalEnd {
        use crate::client::ClientError;
        use ractmq_codec::reason::{SERVER_SHUTTING_DOWN, SERVER_UNAVAILABLE};
        match e {
            ClientError::Disconnected(SERVER_SHUTTING_DOWN) | ClientError::Refused(SERVER_UNAVAILABLE) => {
                LocalEnd::NodeStopping
            }
            other => LocalEnd::Failed(format!("local broker: {other}")),
        }
    }
}

impl From<String> for LocalEnd {
    fn from(e: String) -> LocalEnd {
        LocalEnd::Failed(e)
    }
}

/// The end of a pump from what its local session said: `Ok` when the node is stopping.
pub(crate) fn pump_end(bridge: &str, end: LocalEnd) -> Result<(), String> {
    match end {
        LocalEnd::NodeStopping => {
            tracing::info!(bridge, "bridge stopped: the node is stopping");
            Ok(())
        }
        LocalEnd::Failed(why) => Err(why),
    }
}

/// End the local session of `bridge`.
pub(crate) async fn forget(view: &BrokerView, bridge: &str) -> Result<(), String> {
    let mut client = Client::<()>::new(ClientOptions {
        client_id: config::local_client_id(bridge),
        protocol: Protocol::V5,
        clean_start: true,
        session_expiry: 0,
        keep_alive: 0,
        username: None,
        password: None,
        receive_maximum: 1,
    });
    let mut link = Link::new(view.connect_in_process(4096), Protocol::V5, false);
    let mut packets = vec![client.connect(Instant::now())];
    link.send(&mut packets).await.map_err(|e| e.to_string())?;
    let connected = async {
        let mut events = Vec::new();
        loop {
            if !link.read_more().await.map_err(|e| e.to_string())? {
                return Err("the local broker closed the connection".to_string());
            }
            while let Some(packet) = link.next_packet()? {
                client
                    .handle(packet, Instant::now(), &mut events)
                    .map_err(|e| e.to_string())?;
                if events.iter().any(|e| matches!(e, Event::Connected { .. })) {
                    return Ok(());
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), connected)
        .await
        .map_err(|_| "no CONNACK from the local broker within 5 s".to_string())??;
    packets.push(client.disconnect_packet());
    link.send(&mut packets).await.map_err(|e| e.to_string())
}
