//! The store on a real file: what is committed comes back, what is done is gone, and a directory in use or a
//! damaged file is refused with a reason, never a panic.

use std::sync::Arc;

use bytes::Bytes;
use ractmq_protocol::snapshot::SubscriptionSnapshot;
use ractmq_protocol::{Delivery, Journal, Message, SessionSnapshot, SubOptions};
use ractmq_store::{Op, SessionRecord, Store, StoreError, StoreOptions};

use ractmq_protocol::Session;

fn open(dir: &std::path::Path) -> (Store, ractmq_store::Recovered) {
    Store::open(dir, StoreOptions::default()).expect("store opens")
}

fn record(client: &str, filter: &str) -> Op {
    let mut session = Session::new(client.into());
    session.expiry_interval = 3600;
    session.subscriptions.insert(
        filter.into(),
        SubOptions {
            qos: ractmq_codec::QoS::ExactlyOnce,
            ..SubOptions::default()
        },
    );
    let snapshot: SessionSnapshot = session.snapshot([], std::time::Instant::now());
    Op::Session {
        client: client.into(),
        record: Box::new(SessionRecord {
            session: snapshot,
            connected: true,
        }),
    }
}

fn copy(store: &Store, client: &str, payload: &str, qos: ractmq_codec::QoS) -> (u64, Op) {
    let stored = store.next_copy();
    let delivery = Delivery {
        message: Arc::new(Message::new("t/1", Bytes::from(payload.to_string()), qos, false)),
        qos,
        retain: false,
        subscription_ids: vec![],
        shared: None,
        stored: Some(stored),
    };
    (
        stored,
        Op::Copy {
            client: client.into(),
            stored,
            delivery,
        },
    )
}

fn journal(client: &str, entry: Journal) -> Op {
    Op::Journal {
        client: client.into(),
        entry,
    }
}

#[tokio::test]
async fn what_was_committed_comes_back_in_order_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let (store, recovered) = open(dir.path());
    assert!(recovered.sessions.is_empty());
    store.submit(record("c1", "t/#"));
    let (a, op) = copy(&store, "c1", "a", ractmq_codec::QoS::ExactlyOnce);
    store.submit(op);
    let (b, op) = copy(&store, "c1", "b", ractmq_codec::QoS::ExactlyOnce);
    store.submit(op);
    let (c, op) = copy(&store, "c1", "c", ractmq_codec::QoS::AtLeastOnce);
    store.submit(op);
    store.submit(journal(
        "c1",
        Journal::Sent {
            stored: a,
            pkid: 11,
            exactly_once: true,
        },
    ));
    store.submit(journal(
        "c1",
        Journal::Sent {
            stored: b,
            pkid: 12,
            exactly_once: true,
        },
    ));
    store.submit(journal("c1", Journal::Received { stored: b }));
    store.submit(journal("c1", Journal::AwaitingRelease { pkid: 40 }));
    store.submit(Op::Retain {
        message: Arc::new(Message::new("r/1", "kept", ractmq_codec::QoS::AtLeastOnce, true)),
    });
    let last = store.submit(Op::Put {
        space: "bans",
        key: "clientid:x".into(),
        value: b"until never".to_vec(),
    });
    store.committed(last).await.unwrap();
    drop(store);

    let (store, recovered) = open(dir.path());
    assert_eq!(recovered.sessions.len(), 1);
    let s = &recovered.sessions[0];
    assert!(s.was_connected);
    assert_eq!(s.session.client_id, "c1");
    assert_eq!(s.session.expiry_interval, 3600);
    assert_eq!(
        s.session.subscriptions,
        vec![SubscriptionSnapshot::new(
            "t/#",
            &SubOptions {
                qos: ractmq_codec::QoS::ExactlyOnce,
                ..SubOptions::default()
            }
        )]
    );
    let inflight: Vec<_> = s.session.inflight.iter().map(|i| (i.pkid, i.state)).collect();
    assert_eq!(inflight, vec![(11, 2), (12, 3)], "QoS 2 sent, then PUBREC received");
    assert_eq!(s.inflight_numbers, vec![a, b]);
    assert_eq!(s.queued_numbers, vec![c]);
    assert_eq!(s.session.queued[0].message.payload, b"c");
    assert_eq!(s.session.awaiting_rel, vec![40]);
    assert_eq!(recovered.retained.len(), 1);
    assert_eq!(recovered.retained[0].payload, b"kept");
    assert_eq!(
        recovered.space("bans").collect::<Vec<_>>(),
        vec![("clientid:x", &b"until never"[..])]
    );
    assert!(store.next_copy() > c, "numbers are not reused");
    let stats = store.stats();
    assert_eq!(
        (stats.sessions, stats.messages, stats.retained, stats.operator),
        (1, 3, 1, 1)
    );
}

#[tokio::test]
async fn completed_copies_and_ended_sessions_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    store.submit(record("keep", "a"));
    store.submit(record("end", "b"));
    let (x, op) = copy(&store, "keep", "x", ractmq_codec::QoS::AtLeastOnce);
    store.submit(op);
    let (_, op) = copy(&store, "end", "y", ractmq_codec::QoS::AtLeastOnce);
    store.submit(op);
    store.submit(journal("end", Journal::AwaitingRelease { pkid: 3 }));
    let t = store.submit(Op::Retain {
        message: Arc::new(Message::new("r", "v", ractmq_codec::QoS::AtMostOnce, true)),
    });
    store.committed(t).await.unwrap();
    store.submit(journal("keep", Journal::Done { stored: x }));
    store.submit(Op::EndSession { client: "end".into() });
    let t = store.submit(Op::Unretain { topic: "r".into() });
    store.committed(t).await.unwrap();
    assert_eq!(store.stats().messages, 0);
    drop(store);

    let (_, recovered) = open(dir.path());
    let clients: Vec<_> = recovered
        .sessions
        .iter()
        .map(|s| s.session.client_id.as_str())
        .collect();
    assert_eq!(clients, vec!["keep"]);
    assert!(recovered.sessions[0].session.queued.is_empty());
    assert!(recovered.retained.is_empty());
}

#[tokio::test]
async fn a_copy_queued_and_completed_in_one_commit_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let (n, op) = copy(&store, "c", "m", ractmq_codec::QoS::AtLeastOnce);
    let t = store
        .submit_all([
            record("c", "t"),
            op,
            journal(
                "c",
                Journal::Sent {
                    stored: n,
                    pkid: 1,
                    exactly_once: false,
                },
            ),
            journal("c", Journal::Done { stored: n }),
        ])
        .unwrap();
    store.committed(t).await.unwrap();
    let stats = store.stats();
    assert_eq!((stats.messages, stats.cancelled), (0, 1));
}

#[test]
fn a_second_process_cannot_open_a_directory_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, _) = open(dir.path());
    match Store::open(dir.path(), StoreOptions::default()) {
        Err(e @ StoreError::InUse(_)) => {
            let line = e.to_string();
            assert!(line.contains("in use") && !line.contains('\n'), "{line}");
        }
        Err(other) => panic!("expected in use, got {other}"),
        Ok(_) => panic!("a directory in use was opened twice"),
    }
}

#[test]
fn a_damaged_file_is_refused_with_one_line() {
    for damage in ["truncate", "garbage", "zeroes"] {
        let dir = tempfile::tempdir().unwrap();
        {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (store, _) = open(dir.path());
            for i in 0..200 {
                store.submit(record(&format!("client-{i}"), "a/b"));
            }
            let t = store.submit(Op::Retain {
                message: Arc::new(Message::new("r", vec![7u8; 5000], ractmq_codec::QoS::AtMostOnce, true)),
            });
            rt.block_on(store.committed(t)).unwrap();
        }
        let file = dir.path().join("ractmq.redb");
        let mut bytes = std::fs::read(&file).unwrap();
        match damage {
            "truncate" => bytes.truncate(bytes.len() / 2),
            "garbage" => {
                let mid = bytes.len() / 3;
                for (i, b) in bytes[mid..mid + 8192].iter_mut().enumerate() {
                    *b = (i * 31 + 7) as u8;
                }
            }
            _ => bytes.iter_mut().take(4096).for_each(|b| *b = 0),
        }
        std::fs::write(&file, bytes).unwrap();
        match Store::open(dir.path(), StoreOptions::default()) {
            Err(e) => {
                let line = e.to_string();
                assert!(!line.contains('\n'), "{damage}: {line}");
                assert!(line.contains("ractmq.redb"), "{damage}: names the file: {line}");
            }
            Ok((_, recovered)) => {
                // The engine found nothing wrong with the part read: what it returns must still be whole.
                assert!(recovered.sessions.len() <= 200, "{damage}");
            }
        }
    }
}

#[tokio::test]
async fn a_send_state_comes_back_whether_it_was_written_with_its_copy_or_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    store.submit(record("c", "t"));
    // Copy, sent and received within one commit: the state is written with the copy.
    let (with_copy, op) = copy(&store, "c", "a", ractmq_codec::QoS::ExactlyOnce);
    let sent = |stored, pkid| {
        journal(
            "c",
            Journal::Sent {
                stored,
                pkid,
                exactly_once: true,
            },
        )
    };
    let t = store
        .submit_all([
            op,
            sent(with_copy, 1),
            journal("c", Journal::Received { stored: with_copy }),
        ])
        .unwrap();
    store.committed(t).await.unwrap();
    // Copy in one commit, sent in the next, received in a third.
    let (after, op) = copy(&store, "c", "b", ractmq_codec::QoS::ExactlyOnce);
    store.committed(store.submit(op)).await.unwrap();
    store.committed(store.submit(sent(after, 2))).await.unwrap();
    // Sent with its copy, received later.
    let (mixed, op) = copy(&store, "c", "m", ractmq_codec::QoS::ExactlyOnce);
    store
        .committed(store.submit_all([op, sent(mixed, 3)]).unwrap())
        .await
        .unwrap();
    let t = store.submit(journal("c", Journal::Received { stored: mixed }));
    store.committed(t).await.unwrap();
    drop(store);

    let (_, recovered) = open(dir.path());
    let s = &recovered.sessions[0];
    let inflight: Vec<_> = s.session.inflight.iter().map(|i| (i.pkid, i.state)).collect();
    assert_eq!(inflight, vec![(1, 3), (2, 2), (3, 3)]);
    assert_eq!(s.inflight_numbers, vec![with_copy, after, mixed]);
}

#[tokio::test]
async fn a_file_whose_queues_drained_gives_its_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        compact_above: 1 << 20,
        compact_every: std::time::Duration::ZERO,
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(dir.path(), options).unwrap();
    store.submit(record("c", "t"));
    let mut numbers = Vec::new();
    for _ in 0..20 {
        let mut ops = Vec::new();
        for _ in 0..500 {
            let (n, op) = copy(&store, "c", &"x".repeat(512), ractmq_codec::QoS::AtLeastOnce);
            numbers.push(n);
            ops.push(op);
        }
        store.committed(store.submit_all(ops).unwrap()).await.unwrap();
    }
    let full = store.stats().file_bytes;
    assert!(full > 4 << 20, "10,000 copies take room: {full}");
    let done = numbers.iter().map(|&stored| journal("c", Journal::Done { stored }));
    store.committed(store.submit_all(done).unwrap()).await.unwrap();
    // The next commit finds the file mostly free and compacts it.
    store.committed(store.submit(record("c", "t"))).await.unwrap();
    let after = store.stats().file_bytes;
    assert!(after < full / 2, "{full} bytes before, {after} after");
    drop(store);
    let (_, recovered) = open(dir.path());
    assert_eq!(recovered.sessions.len(), 1, "what was kept is still there");
}

/// A QoS 2 receipt and the copies it guards are one commit: a kill between two commits must not keep the
/// receipt without the copies (the resent PUBLISH would then be taken for a duplicate and the message lost).
#[tokio::test]
async fn the_ops_of_a_group_are_committed_together_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let before = store.submit(record("c1", "t/#"));
    let group = store.group();
    let receipt = store.submit(journal("c1", Journal::AwaitingRelease { pkid: 7 }));
    store.committed(before).await.expect("the op before the group commits");
    assert!(!store.is_committed(receipt), "a commit took part of an open group");
    let (_, op) = copy(&store, "c1", "m", ractmq_codec::QoS::ExactlyOnce);
    let copy_ticket = store.submit(op);
    drop(group);
    store
        .committed(copy_ticket)
        .await
        .expect("the group commits once closed");
    assert!(store.is_committed(receipt));
}
