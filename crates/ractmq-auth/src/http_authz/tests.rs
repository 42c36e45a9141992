//! Against a real HTTP service (axum on a loopback port) that answers by topic and counts what it is asked and
//! how many requests it has open at once.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::State;
use axum::http::StatusCode as Status;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::*;
use crate::http_auth::{HttpAuthConfig, OnError};

#[derive(Default)]
struct Service {
    requests: Mutex<Vec<Value>>,
    open: AtomicUsize,
    most_open: AtomicUsize,
}

impl Service {
    fn count(&self) -> usize {
        self.requests.lock().len()
    }
}

async fn authz(State(service): State<Arc<Service>>, Json(body): Json<Value>) -> Response {
    service.requests.lock().push(body.clone());
    let open = service.open.fetch_add(1, Ordering::SeqCst) + 1;
    service.most_open.fetch_max(open, Ordering::SeqCst);
    let topic = body["topic"].as_str().unwrap_or_default().to_string();
    let response = if topic.starts_with("allowed/") {
        Json(json!({"result": "allow"})).into_response()
    } else if topic.starts_with("denied/") {
        Json(json!({"result": "deny"})).into_response()
    } else if topic.starts_with("nocontent/") {
        Status::NO_CONTENT.into_response()
    } else if topic.starts_with("error/") {
        Status::INTERNAL_SERVER_ERROR.into_response()
    } else if topic.starts_with("slow/") {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Json(json!({"result": "allow"})).into_response()
    } else if topic.starts_with("busy/") {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Json(json!({"result": "allow"})).into_response()
    } else {
        Json(json!({"result": "ignore"})).into_response()
    };
    service.open.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn start() -> (SocketAddr, Arc<Service>) {
    let service = Arc::new(Service::default());
    let app = Router::new().route("/authz", post(authz)).with_state(service.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, service)
}

fn source(addr: SocketAddr, config: impl FnOnce(&mut HttpAuthConfig)) -> Arc<HttpAuthSource> {
    let mut c = HttpAuthConfig {
        authz_url: Some(format!("http://{addr}/authz")),
        ..HttpAuthConfig::default()
    };
    config(&mut c);
    Arc::new(HttpAuthSource::new(c).unwrap())
}

fn client(source: &Arc<HttpAuthSource>, id: &str) -> Arc<ClientAuthz> {
    let info = ClientInfo {
        client_id: id.into(),
        username: Some("alice".into()),
        peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listener: "tcp".into(),
    };
    Arc::new(ClientAuthz::new(source.clone(), info))
}

fn publish(topic: &str) -> Question<'_> {
    Question {
        action: Action::Publish,
        topic,
        qos: QoS::AtLeastOnce,
        retain: false,
    }
}

fn requests(topics: &[&str]) -> Vec<AuthzRequest> {
    topics.iter().map(|t| publish(t).into()).collect()
}

#[tokio::test]
async fn what_is_fetched_answers_the_core_and_is_cached_until_the_ttl() {
    let (addr, service) = start().await;
    let http = source(addr, |c| c.cache_ttl = Duration::from_millis(400));
    let c = client(&http, "c1");
    let topics = ["allowed/a", "denied/b", "other", "nocontent/c"];
    c.begin(Instant::now());
    assert!(topics.iter().all(|t| !c.knows(publish(t))));
    c.clone().fetch(requests(&topics)).await;
    let answers: Vec<AuthzAnswer> = topics.iter().map(|t| c.answer(publish(t))).collect();
    use AuthzAnswer::{Allow, Deny, Ignore};
    assert_eq!(answers, [Allow, Deny, Ignore, Allow]);
    c.settle();
    assert_eq!(service.count(), 4);
    assert_eq!(
        service.requests.lock()[0],
        json!({"clientid": "c1", "username": "alice", "peerhost": "127.0.0.1", "listener": "tcp",
               "action": "publish", "topic": "allowed/a", "qos": 1, "retain": false})
    );

    // Within the TTL the same questions are answered from the cache; another QoS, the retain flag or the
    // other action is another question.
    c.begin(Instant::now());
    assert!(topics.iter().all(|t| c.knows(publish(t))));
    assert!(!c.knows(Question {
        qos: QoS::AtMostOnce,
        ..publish("allowed/a")
    }));
    assert!(!c.knows(Question {
        retain: true,
        ..publish("allowed/a")
    }));
    assert!(!c.knows(Question {
        action: Action::Subscribe,
        ..publish("allowed/a")
    }));
    c.settle();
    // Another client has answers of its own.
    let other = client(&http, "c2");
    assert!(!other.knows(publish("allowed/a")));

    tokio::time::sleep(Duration::from_millis(450)).await;
    c.begin(Instant::now());
    assert!(!c.knows(publish("allowed/a")), "expired");
    c.settle();
}

#[tokio::test]
async fn answers_found_at_begin_stay_until_settle() {
    let (addr, _service) = start().await;
    let http = source(addr, |c| c.cache_ttl = Duration::from_millis(200));
    let c = client(&http, "c1");
    c.begin(Instant::now());
    c.clone().fetch(requests(&["denied/a"])).await;
    c.settle();
    c.begin(Instant::now());
    assert!(c.knows(publish("denied/a")));
    // The batch takes longer than what was left of the TTL: its answer holds until the batch is done.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(c.answer(publish("denied/a")), AuthzAnswer::Deny);
    c.settle();
    assert!(!c.knows(publish("denied/a")));
}

#[tokio::test]
async fn errors_count_as_on_error_says_and_are_not_cached() {
    let (addr, service) = start().await;
    for (on_error, want) in [
        (OnError::Ignore, AuthzAnswer::Ignore),
        (OnError::Deny, AuthzAnswer::Deny),
    ] {
        let http = source(addr, |c| c.on_error = on_error);
        let c = client(&http, "c1");
        c.begin(Instant::now());
        c.clone().fetch(requests(&["error/a"])).await;
        assert_eq!(c.answer(publish("error/a")), want);
        c.settle();
        c.begin(Instant::now());
        assert!(!c.knows(publish("error/a")), "asked again next time");
        // A question nobody fetched is answered as an error too.
        assert_eq!(c.answer(publish("allowed/never-fetched")), want);
        c.settle();
    }
    assert_eq!(service.count(), 2);
}

#[tokio::test]
async fn a_slow_service_is_cut_at_the_timeout_and_the_rest_is_answered() {
    let (addr, _service) = start().await;
    let http = source(addr, |c| c.timeout = Duration::from_millis(200));
    let c = client(&http, "c1");
    let started = Instant::now();
    c.begin(started);
    c.clone().fetch(requests(&["slow/a", "allowed/b"])).await;
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(c.answer(publish("slow/a")), AuthzAnswer::Ignore);
    assert_eq!(c.answer(publish("allowed/b")), AuthzAnswer::Allow);
    c.settle();
}

#[tokio::test]
async fn requests_in_flight_are_bounded_per_client_and_per_source() {
    let (addr, service) = start().await;
    let http = source(addr, |_| {});
    let topics: Vec<String> = (0..30).map(|i| format!("busy/{i}")).collect();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    let c = client(&http, "c1");
    c.begin(Instant::now());
    c.clone().fetch(requests(&topics)).await;
    assert!(topics.iter().all(|t| c.knows(publish(t))));
    let most = service.most_open.load(Ordering::SeqCst);
    assert!(most > 1 && most <= FETCH_CONCURRENCY, "{most} open at once");

    // Three clients at once, on a source that allows two requests in flight.
    let (addr, service) = start().await;
    let narrow = source(addr, |c| c.max_in_flight = 2);
    let fetches = (0..3).map(|i| {
        let c = client(&narrow, &format!("c{i}"));
        c.begin(Instant::now());
        tokio::spawn(c.fetch(requests(&topics[..10])))
    });
    for fetch in fetches.collect::<Vec<_>>() {
        fetch.await.unwrap();
    }
    assert_eq!(service.count(), 30);
    assert_eq!(service.most_open.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_cache_is_bounded_per_client_but_a_batch_keeps_all_it_fetched() {
    let (addr, _service) = start().await;
    let http = source(addr, |c| c.authz_cache_per_client = 2);
    let long = format!("allowed/{}", "x".repeat(300));
    let topics = ["allowed/1", "allowed/2", "allowed/3", "allowed/4", long.as_str()];
    let c = client(&http, "c1");
    c.begin(Instant::now());
    c.clone().fetch(requests(&topics)).await;
    assert!(topics.iter().all(|t| c.knows(publish(t))), "the whole batch is at hand");
    c.settle();
    c.begin(Instant::now());
    let kept = topics.iter().filter(|t| c.knows(publish(t))).count();
    assert_eq!(kept, 2, "two cached after the batch");
    assert!(!c.knows(publish(&long)), "long topics are not cached");
    c.settle();

    let uncached = source(addr, |c| c.authz_cache_per_client = 0);
    let c = client(&uncached, "c1");
    c.begin(Instant::now());
    c.clone().fetch(requests(&topics[..1])).await;
    c.settle();
    c.begin(Instant::now());
    assert!(!c.knows(publish(topics[0])));
}
