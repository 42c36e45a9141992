//! The PostgreSQL sink against a real PostgreSQL server of each test's own (tests/support/postgres.rs): rows
//! and their types exactly as written, a batch as one transaction, no SQL injection through a topic or a
//! payload, refused rows failing their whole batch, and a database outage as retryable.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ractmq_bridge::{PostgresConfig, PostgresSink, Record};
use ractmq_codec::QoS;
use support::postgres::PgServer;

fn record(topic: &str, payload: &str) -> Record {
    Record {
        topic: topic.into(),
        payload: payload.to_string().into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        user_properties: Vec::new(),
        timestamp_ms: 1_700_000_000_123,
    }
}

/// A server with `ddl` run in its database.
async fn server_with(ddl: &str) -> (PgServer, tokio_postgres::Client) {
    let server = PgServer::start().await;
    let client = server.client().await;
    client.batch_execute(ddl).await.expect("the test's tables");
    (server, client)
}

fn sink(server: &PgServer, sql: &str) -> PostgresSink {
    PostgresSink::new(&PostgresConfig::new(server.url(), sql)).unwrap()
}

async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn rows_are_written_with_their_values_and_types() {
    let (server, client) = server_with(
        "CREATE TABLE readings (id serial PRIMARY KEY, topic text NOT NULL, payload text, qos int2, retain bool,
            at timestamptz, ts bigint, celsius float8, site varchar(20), doc jsonb, raw bytea, n int4)",
    )
    .await;
    let sink = sink(
        &server,
        "INSERT INTO readings (topic, payload, qos, retain, at, ts, celsius, site, doc, raw, n)
         VALUES (${topic}, ${payload}, ${qos}, ${retain}, ${timestamp}, ${timestamp}, ${payload.t},
                 ${user_property.site}, ${payload}, ${payload}, ${payload.n})",
    );
    assert!(sink.statement().contains("VALUES ($1, $2, $3, $4, $5, $6, $7,"));
    let mut first = record("sensors/1", r#"{"t":21.5,"n":"7"}"#);
    first.user_properties = vec![("site".into(), "north".into())];
    let mut second = record("sensors/2", r#"{"t":-3}"#);
    second.qos = QoS::ExactlyOnce;
    second.retain = true;
    second.timestamp_ms = 1_600_000_000_000;
    sink.send(&[first, second]).await.unwrap();

    assert_eq!(count(&client, "readings").await, 2);
    let rows = client
        .query(
            "SELECT topic, payload, qos, retain, at, ts, celsius, site, doc, raw, n FROM readings ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let r = &rows[0];
    assert_eq!(r.get::<_, String>("topic"), "sensors/1");
    assert_eq!(r.get::<_, String>("payload"), r#"{"t":21.5,"n":"7"}"#);
    assert_eq!(r.get::<_, i16>("qos"), 1);
    assert!(!r.get::<_, bool>("retain"));
    assert_eq!(
        r.get::<_, SystemTime>("at"),
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
    );
    assert_eq!(r.get::<_, i64>("ts"), 1_700_000_000_123);
    assert_eq!(r.get::<_, Option<f64>>("celsius"), Some(21.5));
    assert_eq!(r.get::<_, Option<String>>("site").as_deref(), Some("north"));
    assert_eq!(
        r.get::<_, serde_json::Value>("doc"),
        serde_json::json!({"t": 21.5, "n": "7"})
    );
    assert_eq!(r.get::<_, Vec<u8>>("raw"), br#"{"t":21.5,"n":"7"}"#);
    assert_eq!(r.get::<_, Option<i32>>("n"), Some(7));

    let r = &rows[1];
    assert_eq!(r.get::<_, String>("topic"), "sensors/2");
    assert_eq!(r.get::<_, i16>("qos"), 2);
    assert!(r.get::<_, bool>("retain"));
    assert_eq!(
        r.get::<_, SystemTime>("at"),
        UNIX_EPOCH + Duration::from_secs(1_600_000_000)
    );
    assert_eq!(r.get::<_, Option<f64>>("celsius"), Some(-3.0));
    // Missing: a user property and a JSON field are NULL.
    assert_eq!(r.get::<_, Option<String>>("site"), None);
    assert_eq!(r.get::<_, Option<i32>>("n"), None);
}

#[tokio::test]
async fn a_batch_of_500_is_one_transaction() {
    let (server, client) = server_with("CREATE TABLE readings (topic text, seq int4)").await;
    let sink = sink(
        &server,
        "INSERT INTO readings (topic, seq) VALUES (${topic}, ${payload})",
    );
    let batch: Vec<Record> = (0..500).map(|i| record(&format!("t/{i}"), &i.to_string())).collect();
    sink.send(&batch).await.unwrap();
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT xmin::text), min(seq), max(seq), sum(seq) FROM readings",
            &[],
        )
        .await
        .unwrap();
    // All 500 rows, written by a single transaction (one xmin).
    assert_eq!(row.get::<_, i64>(0), 500);
    assert_eq!(row.get::<_, i64>(1), 1);
    assert_eq!((row.get::<_, i32>(2), row.get::<_, i32>(3)), (0, 499));
    assert_eq!(row.get::<_, i64>(4), (0..500).sum::<i64>());
}

#[tokio::test]
async fn clones_send_at_once_on_their_own_connections() {
    let (server, client) = server_with("CREATE TABLE readings (topic text, seq int4)").await;
    let sink = sink(
        &server,
        "INSERT INTO readings (topic, seq) VALUES (${topic}, ${payload})",
    );
    let sends: Vec<_> = (0..8)
        .map(|b| {
            let sink = sink.clone();
            tokio::spawn(async move {
                let batch: Vec<Record> = (0..10).map(|i| record(&format!("b/{b}"), &i.to_string())).collect();
                sink.send(&batch).await
            })
        })
        .collect();
    for send in sends {
        send.await.unwrap().unwrap();
    }
    assert_eq!(count(&client, "readings").await, 80);
    let batches: i64 = client
        .query_one("SELECT count(DISTINCT xmin::text) FROM readings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(batches, 8);
}

#[tokio::test]
async fn sql_in_a_topic_or_payload_is_stored_as_text() {
    let (server, client) = server_with("CREATE TABLE readings (topic text, payload text)").await;
    let sink = sink(
        &server,
        "INSERT INTO readings (topic, payload) VALUES (${topic}, ${payload})",
    );
    let attack = "'); DROP TABLE readings; --";
    let topic = "x', 'y'); DROP TABLE readings; --";
    sink.send(&[record(topic, attack)]).await.unwrap();
    sink.send(&[record("t", "plain")]).await.unwrap();
    // The table is still there, with exactly the two rows, the attack as plain text.
    let rows = client
        .query("SELECT topic, payload FROM readings ORDER BY payload", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, String>(0), topic);
    assert_eq!(rows[0].get::<_, String>(1), attack);
    assert_eq!(rows[1].get::<_, String>(1), "plain");
    assert_eq!(
        sink.statement(),
        "INSERT INTO readings (topic, payload) VALUES ($1, $2)"
    );
}

#[tokio::test]
async fn a_value_that_does_not_convert_fails_its_whole_batch_and_is_fatal() {
    let (server, client) = server_with("CREATE TABLE counts (topic text, n int4)").await;
    let sink = sink(&server, "INSERT INTO counts (topic, n) VALUES (${topic}, ${payload})");
    let err = sink
        .send(&[record("a", "1"), record("b", "2"), record("c", "twelve")])
        .await
        .unwrap_err();
    assert!(!err.retryable, "{err}");
    assert_eq!(
        err.reason,
        r#"record 2 (topic "c"): parameter $2 (${payload}, int4): text "twelve" is not an integer"#
    );
    assert_eq!(count(&client, "counts").await, 0);
    // The next batch is written: nothing was left behind on the connection.
    sink.send(&[record("d", "4")]).await.unwrap();
    assert_eq!(count(&client, "counts").await, 1);
}

#[tokio::test]
async fn a_row_the_database_refuses_fails_its_whole_batch_and_is_fatal() {
    let (server, client) = server_with(
        "CREATE TABLE counts (id int4 PRIMARY KEY, n int4 NOT NULL CHECK (n >= 0));
         INSERT INTO counts VALUES (100, 0)",
    )
    .await;
    let sink = sink(
        &server,
        "INSERT INTO counts (id, n) VALUES (${payload.id}, ${payload.n})",
    );
    let row = |id: i64, n: &str| record("t", &format!(r#"{{"id":{id},"n":{n}}}"#));

    // 23505 unique violation on the third row: the first two are rolled back with it.
    let err = sink.send(&[row(1, "1"), row(2, "2"), row(1, "3")]).await.unwrap_err();
    assert!(!err.retryable, "{err}");
    assert!(err.reason.contains("23505"), "{err}");
    // 23502 not null (a JSON field that is missing), 23514 check.
    let err = sink.send(&[row(3, "3"), record("t", r#"{"id":4}"#)]).await.unwrap_err();
    assert!(!err.retryable && err.reason.contains("23502"), "{err}");
    let err = sink.send(&[row(5, "-1")]).await.unwrap_err();
    assert!(!err.retryable && err.reason.contains("23514"), "{err}");
    assert_eq!(count(&client, "counts").await, 1);

    // A statement about a table that is not there: 42P01, fatal.
    let missing = self::sink(&server, "INSERT INTO nowhere (a) VALUES (${topic})");
    let err = missing.send(&[record("t", "x")]).await.unwrap_err();
    assert!(!err.retryable && err.reason.contains("42P01"), "{err}");

    sink.send(&[row(6, "6"), row(7, "7")]).await.unwrap();
    assert_eq!(count(&client, "counts").await, 3);
}

#[tokio::test]
async fn a_database_that_is_down_is_retryable_and_the_sink_reconnects() {
    let (mut server, client) = server_with("CREATE TABLE readings (topic text, payload text)").await;
    drop(client);
    let sink = sink(
        &server,
        "INSERT INTO readings (topic, payload) VALUES (${topic}, ${payload})",
    );
    sink.send(&[record("t", "before")]).await.unwrap();

    server.stop();
    let err = sink.send(&[record("t", "during")]).await.unwrap_err();
    assert!(err.retryable, "{err}");
    // A sink made while the database is down: made all the same (it connects lazily), its sends retryable.
    let late = self::sink(
        &server,
        "INSERT INTO readings (topic, payload) VALUES (${topic}, ${payload})",
    );
    let err = late.send(&[record("t", "during")]).await.unwrap_err();
    assert!(err.retryable && err.reason.starts_with("connecting: "), "{err}");

    server.restart().await;
    sink.send(&[record("t", "after")]).await.unwrap();
    late.send(&[record("t", "late")]).await.unwrap();
    let client = server.client().await;
    let rows = client
        .query("SELECT payload FROM readings ORDER BY payload", &[])
        .await
        .unwrap();
    let payloads: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(payloads, ["after", "before", "late"]);
}
