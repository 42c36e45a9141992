//! The HTTP sink against a real HTTP server (axum, on a free loopback port) that records every request and
//! answers as each test tells it: a status and body, or no answer until long after the sink's timeout.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use ractmq_bridge::{HttpConfig, HttpSink, Record};
use ractmq_codec::QoS;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    /// Path and query, as sent.
    uri: String,
    headers: HeaderMap,
    body: String,
    peer: SocketAddr,
}

/// How the server answers.
#[derive(Debug, Clone)]
enum Answer {
    Status(u16, String),
    /// Answer 200, but only after this long.
    Hang(Duration),
}

#[derive(Clone)]
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    answer: Arc<Mutex<Answer>>,
}

impl Server {
    async fn start(answer: Answer) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            answer: Arc::new(Mutex::new(answer)),
        };
        let app = Router::new().fallback(handle).with_state(server.clone());
        tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .await
                .unwrap()
        });
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }
}

async fn handle(
    State(server): State<Server>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    server.seen.lock().unwrap().push(Seen {
        method,
        uri: uri.to_string(),
        headers,
        body: String::from_utf8(body.to_vec()).expect("the sink sent a body that is not UTF-8"),
        peer,
    });
    let answer = server.answer.lock().unwrap().clone();
    match answer {
        Answer::Status(status, body) => (StatusCode::from_u16(status).unwrap(), body).into_response(),
        Answer::Hang(delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::OK.into_response()
        }
    }
}

fn ok() -> Answer {
    Answer::Status(200, String::new())
}

fn record(topic: &str, payload: &[u8]) -> Record {
    Record {
        topic: topic.into(),
        payload: payload.to_vec().into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        user_properties: Vec::new(),
        timestamp_ms: 1_700_000_000_000,
    }
}

fn config(url: String) -> HttpConfig {
    HttpConfig {
        url,
        ..HttpConfig::default()
    }
}

fn sink(config: &HttpConfig) -> HttpSink {
    HttpSink::new(config).unwrap()
}

#[tokio::test]
async fn the_default_body_is_a_json_object_of_the_record() {
    let server = Server::start(ok()).await;
    let sink = sink(&config(server.url("/hook")));
    let mut r = record("sensors/1", br#"{"t":21.5}"#);
    r.retain = true;
    r.user_properties = vec![("site".into(), "north".into()), ("site".into(), "south \"2\"".into())];
    sink.send(&[r]).await.unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].uri, "/hook");
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(
        seen[0].body,
        r#"{"topic":"sensors/1","payload":"{\"t\":21.5}","qos":1,"retain":true,"timestamp":1700000000000,"user_properties":[["site","north"],["site","south \"2\""]]}"#
    );
    serde_json::from_str::<serde_json::Value>(&seen[0].body).unwrap();
}

#[tokio::test]
async fn a_payload_that_is_not_utf8_goes_as_base64() {
    let server = Server::start(ok()).await;
    let sink = sink(&config(server.url("/hook")));
    sink.send(&[record("bin", &[0xff, 0x00, 0xfe])]).await.unwrap();
    assert_eq!(
        server.seen()[0].body,
        r#"{"topic":"bin","payload_base64":"/wD+","qos":1,"retain":false,"timestamp":1700000000000,"user_properties":[]}"#
    );
}

#[tokio::test]
async fn a_body_template_is_filled_from_the_record() {
    let server = Server::start(ok()).await;
    let mut config = config(server.url("/hook"));
    config.body = Some(r#"{"sensor":"${topic}","celsius":${payload.t},"site":"${user_property.site}"}"#.into());
    let mut r = record("sensors/1", br#"{"t":21.5}"#);
    r.user_properties = vec![("site".into(), "north".into())];
    sink(&config).send(&[r]).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, r#"{"sensor":"sensors/1","celsius":21.5,"site":"north"}"#);
}

#[tokio::test]
async fn a_batch_is_one_request_with_a_json_array() {
    let server = Server::start(ok()).await;
    let mut config = config(server.url("/hook"));
    config.batch_size = 3;
    let sink = sink(&config);
    let batch = [record("a", b"1"), record("b", b"2"), record("c", b"3")];
    sink.send(&batch).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let object = |t: &str, p: &str| {
        format!(
            r#"{{"topic":"{t}","payload":"{p}","qos":1,"retain":false,"timestamp":1700000000000,"user_properties":[]}}"#
        )
    };
    assert_eq!(
        seen[0].body,
        format!("[{},{},{}]", object("a", "1"), object("b", "2"), object("c", "3"))
    );

    // Bodies that are JSON go in as they are, others as JSON strings; one record of a batching sink is
    // still an array.
    config.body = Some("${payload}".into());
    let sink = self::sink(&config);
    sink.send(&[record("a", br#"{"x": 1}"#), record("a", b"plain \"text\"")])
        .await
        .unwrap();
    sink.send(&[record("a", b"42")]).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].body, r#"[{"x": 1},"plain \"text\""]"#);
    assert_eq!(seen[2].body, "[42]");
}

#[tokio::test]
async fn configured_headers_are_sent() {
    let server = Server::start(ok()).await;
    let mut config = config(server.url("/hook"));
    config.headers.insert("X-Api-Key".into(), "secret".into());
    config
        .headers
        .insert("Content-Type".into(), "text/plain; charset=utf-8".into());
    config.body = Some("${payload}".into());
    sink(&config).send(&[record("t", b"hello")]).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["x-api-key"], "secret");
    let content_types: Vec<_> = seen[0].headers.get_all("content-type").iter().collect();
    assert_eq!(content_types, ["text/plain; charset=utf-8"]);
    assert_eq!(seen[0].body, "hello");
}

#[tokio::test]
async fn the_url_and_method_are_as_configured() {
    let server = Server::start(ok()).await;
    let mut config = config(server.url("/hook/${topic}?qos=${qos}&site=${user_property.site}"));
    config.method = "put".into();
    let sink = sink(&config);
    let mut r = record("sensors/room 1", b"x");
    r.user_properties = vec![("site".into(), "a&b=c".into())];
    assert_eq!(
        sink.url_for(&r),
        server.url("/hook/sensors/room%201?qos=1&site=a%26b%3Dc")
    );
    sink.send(&[r]).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, Method::PUT);
    assert_eq!(seen[0].uri, "/hook/sensors/room%201?qos=1&site=a%26b%3Dc");

    for method in ["PATCH", "GET", "DELETE", "POST"] {
        let mut config = self::config(server.url("/m"));
        config.method = method.into();
        self::sink(&config).send(&[record("t", b"x")]).await.unwrap();
        assert_eq!(server.seen().last().unwrap().method.as_str(), method);
    }
    assert_eq!(server.seen().len(), 5);
}

#[tokio::test]
async fn two_hundreds_are_taken_and_connections_kept() {
    let server = Server::start(Answer::Status(204, String::new())).await;
    let sink = sink(&config(server.url("/hook")));
    sink.send(&[record("t", b"1")]).await.unwrap();
    server.answer(Answer::Status(200, "x".repeat(100_000)));
    sink.send(&[record("t", b"2")]).await.unwrap();
    server.answer(Answer::Status(201, "created".into()));
    sink.clone().send(&[record("t", b"3")]).await.unwrap();
    // An empty batch makes no request.
    sink.send(&[]).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    // One connection for all three requests: the first two answers were read, and clones share the pool.
    assert_eq!(seen[1].peer, seen[0].peer);
    assert_eq!(seen[2].peer, seen[0].peer);
}

#[tokio::test]
async fn clones_send_at_once() {
    let server = Server::start(Answer::Hang(Duration::from_millis(300))).await;
    let sink = sink(&config(server.url("/hook")));
    let started = Instant::now();
    let sends: Vec<_> = (0..8)
        .map(|i| {
            let sink = sink.clone();
            tokio::spawn(async move { sink.send(&[record("t", format!("{i}").as_bytes())]).await })
        })
        .collect();
    for send in sends {
        send.await.unwrap().unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.seen().len(), 8);
}

#[tokio::test]
async fn failing_statuses_are_retryable_or_fatal() {
    let server = Server::start(ok()).await;
    let sink = sink(&config(server.url("/hook")));
    for (status, retryable) in [
        (503, true),
        (500, true),
        (429, true),
        (408, true),
        (400, false),
        (404, false),
        (302, false),
    ] {
        server.answer(Answer::Status(status, format!("status {status}\nsaid so")));
        let err = sink.send(&[record("t", b"x")]).await.unwrap_err();
        assert_eq!(err.retryable, retryable, "{status}: {err}");
        assert!(err.reason.contains(&format!("HTTP {status}")), "{err}");
        assert!(err.reason.contains(&format!("status {status} said so")), "{err}");
        assert!(!err.reason.contains('\n'));
    }
    assert_eq!(server.seen().len(), 7);
}

#[tokio::test]
async fn a_503_is_retryable_and_quotes_200_bytes_of_the_body() {
    let server = Server::start(Answer::Status(503, format!("{}{}", "a".repeat(200), "b".repeat(5000)))).await;
    let url = server.url("/hook");
    let err = sink(&config(url.clone())).send(&[record("t", b"x")]).await.unwrap_err();
    assert!(err.retryable);
    assert_eq!(
        err.reason,
        format!("POST {url}: HTTP 503 Service Unavailable: {}", "a".repeat(200))
    );
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_400_is_fatal() {
    let server = Server::start(Answer::Status(400, "bad field".into())).await;
    let url = server.url("/hook");
    let err = sink(&config(url.clone())).send(&[record("t", b"x")]).await.unwrap_err();
    assert!(!err.retryable);
    assert_eq!(err.reason, format!("POST {url}: HTTP 400 Bad Request: bad field"));
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_timeout_is_retryable() {
    let server = Server::start(Answer::Hang(Duration::from_secs(5))).await;
    let mut config = config(server.url("/hook"));
    config.timeout_ms = 300;
    let started = Instant::now();
    let err = sink(&config).send(&[record("t", b"x")]).await.unwrap_err();
    let took = started.elapsed();
    assert!(err.retryable, "{err}");
    assert!(err.reason.contains("timed out after 300 ms"), "{err}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    // A port that was free a moment ago, with nothing listening on it now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = sink(&config(format!("http://127.0.0.1:{port}/hook")))
        .send(&[record("t", b"x")])
        .await
        .unwrap_err();
    assert!(err.retryable, "{err}");
    assert!(err.reason.to_lowercase().contains("refused"), "{err}");
    assert_eq!(err.reason.matches("127.0.0.1").count(), 1, "the URL once: {err}");
}

#[tokio::test]
async fn a_password_in_the_url_is_not_in_errors() {
    let server = Server::start(Answer::Status(500, String::new())).await;
    let url = format!("http://user:hunter2@{}/hook", server.addr);
    let err = sink(&config(url)).send(&[record("t", b"x")]).await.unwrap_err();
    assert!(!err.reason.contains("hunter2"), "{err}");
    assert!(server.seen()[0].headers.contains_key("authorization"));
}

#[test]
fn bad_settings_are_refused_by_name() {
    let good = || config("http://127.0.0.1:1/hook".into());
    let error = |change: &dyn Fn(&mut HttpConfig)| {
        let mut config = good();
        change(&mut config);
        HttpSink::new(&config).unwrap_err()
    };
    assert!(HttpSink::new(&good()).is_ok());
    assert!(error(&|c| c.url = "not a url".into()).starts_with("url \"not a url\": "));
    assert!(error(&|c| c.url = "ftp://host/x".into()).contains("not http or https"));
    assert!(error(&|c| c.url = String::new()).starts_with("url "));
    assert!(error(&|c| c.url = "http://h/${topik}".into()).starts_with("url: "));
    // A placeholder may be anywhere in the URL, the host too.
    let mut config = good();
    config.url = "http://${user_property.host}:8080/${topic}".into();
    assert!(HttpSink::new(&config).is_ok());
    assert!(error(&|c| c.body = Some("${payload".into())).starts_with("body: "));
    assert_eq!(
        error(&|c| c.method = "FETCH".into()),
        "method \"FETCH\": not one of POST, PUT, PATCH, GET, DELETE"
    );
    assert_eq!(
        error(&|c| {
            c.headers.insert("bad header".into(), "x".into());
        }),
        "header \"bad header\": bad name"
    );
    assert!(error(&|c| {
        c.headers.insert("x-ok".into(), "line\nbreak".into());
    })
    .starts_with("header \"x-ok\": bad value"));
    assert!(error(&|c| c.batch_size = 0).starts_with("batch_size: "));
    assert!(error(&|c| c.timeout_ms = 0).starts_with("timeout_ms: "));
    assert!(error(&|c| c.max_inflight = 0).starts_with("max_inflight: "));
}

#[test]
fn the_configuration_has_defaults_and_refuses_unknown_settings() {
    let config: HttpConfig = serde_json::from_str(r#"{"url": "http://h/x"}"#).unwrap();
    assert_eq!(config, self::config("http://h/x".into()));
    assert_eq!(config.method, "POST");
    assert!(config.headers.is_empty() && config.body.is_none());
    assert_eq!(
        (
            config.timeout_ms,
            config.batch_size,
            config.max_inflight,
            config.retries,
            config.retry_backoff_ms
        ),
        (5000, 1, 16, 3, 200)
    );
    let err = serde_json::from_str::<HttpConfig>(r#"{"url": "http://h/x", "name": "a"}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `name`"), "{err}");
    assert!(serde_json::from_str::<HttpConfig>("{}")
        .unwrap_err()
        .to_string()
        .contains("missing field `url`"));
}
