//! Load for tests that count deliveries: numbered bursts from several publishers, and a subscriber the test
//! polls itself, so that it can fall behind on purpose and then count what arrived, exactly.

use std::collections::HashMap;

use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};

use super::{options, Client, DEADLINE};

/// A rumqttc subscriber whose event loop the test polls itself, so that it can stop reading its socket (the
/// way a slow subscriber falls behind) and start again.
pub struct Subscriber {
    _client: AsyncClient,
    events: EventLoop,
}

impl Subscriber {
    pub async fn connect(addr: std::net::SocketAddr, id: &str, filter: &str, qos: QoS) -> Subscriber {
        let (client, mut events) = AsyncClient::new(options(addr, id), 1000);
        client.subscribe(filter, qos).await.unwrap();
        loop {
            match tokio::time::timeout(DEADLINE, events.poll()).await {
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
                Ok(Ok(_)) => {}
                other => panic!("{id} could not subscribe: {other:?}"),
            }
        }
        Subscriber {
            _client: client,
            events,
        }
    }

    /// The next PUBLISH, acknowledged as the client library does.
    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        loop {
            match tokio::time::timeout(DEADLINE, self.events.poll()).await {
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => return p,
                Ok(Ok(_)) => {}
                other => panic!("no message within {DEADLINE:?}: {other:?}"),
            }
        }
    }

    /// Read until every publisher's end marker arrived; returns how often each (publisher, number) came.
    pub async fn count_until_ends(&mut self, publishers: usize) -> HashMap<(u8, u32), usize> {
        let mut seen = HashMap::new();
        let mut ended = 0;
        while ended < publishers {
            let p = self.next_publish().await;
            if p.topic.ends_with("/end") {
                ended += 1;
                continue;
            }
            let key = (p.payload[0], u32::from_be_bytes(p.payload[1..5].try_into().unwrap()));
            *seen.entry(key).or_insert(0) += 1;
        }
        seen
    }
}

/// `payload_len` bytes naming publisher `from` and message `n`.
pub fn numbered(from: u8, n: u32, payload_len: usize) -> Vec<u8> {
    let mut payload = vec![0u8; payload_len.max(5)];
    payload[0] = from;
    payload[1..5].copy_from_slice(&n.to_be_bytes());
    payload
}

/// Publishers 0.. each send `count` numbered messages to `topic` as fast as the broker takes them, then
/// `{topic}/end`. Each publisher's task ends once every message is acknowledged (QoS 1/2) or written.
pub fn publish_bursts(
    addr: std::net::SocketAddr,
    publishers: u8,
    count: u32,
    qos: QoS,
    payload_len: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..publishers)
        .map(|from| {
            tokio::spawn(async move {
                let publisher = Client::connect(addr, &format!("pub-{from}")).await;
                for n in 0..count {
                    publisher
                        .publish("burst", qos, false, numbered(from, n, payload_len))
                        .await;
                }
                publisher.publish("burst/end", qos, false, vec![from]).await;
                let mut publisher = publisher;
                if qos != QoS::AtMostOnce {
                    let mut done = 0;
                    while done <= count {
                        match publisher.next().await {
                            Ok(Packet::PubAck(_)) | Ok(Packet::PubComp(_)) => done += 1,
                            Ok(_) => {}
                            Err(e) => panic!("publisher {from} lost its connection: {e}"),
                        }
                    }
                }
            })
        })
        .collect()
}

/// Every (publisher, number) arrived exactly once.
pub fn assert_each_once(seen: &HashMap<(u8, u32), usize>, publishers: u8, count: u32, who: &str) {
    let mut missing = 0;
    let mut repeated = 0;
    for from in 0..publishers {
        for n in 0..count {
            match seen.get(&(from, n)) {
                None => missing += 1,
                Some(1) => {}
                Some(_) => repeated += 1,
            }
        }
    }
    assert_eq!(
        (missing, repeated, seen.len()),
        (0, 0, publishers as usize * count as usize),
        "{who}: every message exactly once (missing, repeated, distinct)"
    );
}
