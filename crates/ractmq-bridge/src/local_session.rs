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
