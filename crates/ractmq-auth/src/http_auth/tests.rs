//! Against a real HTTP service (axum on a loopback port) that answers by user name and topic.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode as Status;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use parking_lot::Mutex;

use super::*;

/// The fake service: what it was asked.
#[derive(Default)]
struct Service {
    requests: Mutex<Vec<(String, Value)>>,
}

impl Service {
    fn count(&self, path: &str) -> usize {
        self.requests.lock().iter().filter(|(p, _)| p == path).count()
    }
}

async fn authn(State(service): State<Arc<Service>>, Json(body): Json<Value>) -> Response {
    service.requests.lock().push(("authn".into(), body.clone()));
    let user = body["username"].as_str().unwrap_or_default();
    let right = body["password"] == "right";
    match user {
        "alice" if right => Json(json!({"result": "allow", "is_superuser": false})).into_response(),
        "alice" => Json(json!({"result": "deny"})).into_response(),
        "root" => Json(json!({"result": "allow", "is_superuser": true, "acl": [{"topic": "#"}]})).into_response(),
        "nocontent" => Status::NO_CONTENT.into_response(),
        "error" => (Status::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "garbage" => "not json".into_response(),
        "unknown-result" => Json(json!({"result": "maybe"})).into_response(),
        "huge" => Json(json!({"result": "allow", "acl": "x".repeat(100_000)})).into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Json(json!({"result": "allow"})).into_response()
        }
        _ => Json(json!({"result": "ignore"})).into_response(),
    }
}

async fn authz(State(service): State<Arc<Service>>, Path(kind): Path<String>, Json(body): Json<Value>) -> Response {
    service.requests.lock().push(("authz".into(), body.clone()));
    if kind == "down" {
        return Status::SERVICE_UNAVAILABLE.into_response();
    }
    let topic = body["topic"].as_str().unwrap_or_default();
    let result = if topic.starts_with("allowed/") {
        "allow"
    } else if topic.starts_with("denied/") {
        "deny"
    } else {
        "ignore"
    };
    Json(json!({"result": result})).into_response()
}

async fn start() -> (SocketAddr, Arc<Service>) {
    let service = Arc::new(Service::default());
    let app = Router::new()
        .route("/authn", post(authn))
        .route("/authz/:kind", post(authz))
        .with_state(service.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, service)
}

fn source(addr: SocketAddr, config: impl FnOnce(&mut HttpAuthConfig)) -> HttpAuthSource {
    let mut c = HttpAuthConfig {
        authn_url: Some(format!("http://{addr}/authn")),
        authz_url: Some(format!("http://{addr}/authz/ok")),
        ..HttpAuthConfig::default()
    };
    config(&mut c);
    HttpAuthSource::new(c).unwrap()
}

fn client(username: Option<&str>) -> ClientInfo {
    ClientInfo {
        client_id: "sensor-1".into(),
        username: username.map(str::to_string),
        peer: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)),
        listener: "tls".into(),
    }
}

async fn ask(source: &HttpAuthSource, user: &str, password: &str) -> SourceDecision {
    source
        .authenticate(&client(Some(user)), Some(password.as_bytes()))
        .await
}

#[tokio::test]
async fn answers_become_decisions_and_the_request_has_emqx_fields() {
    let (addr, service) = start().await;
    let http = source(addr, |_| {});
    assert_eq!(
        ask(&http, "alice", "right").await,
        SourceDecision::Allow {
            superuser: false,
            acl: None
        }
    );
    assert_eq!(
        ask(&http, "alice", "wrong").await,
        SourceDecision::Deny(DenyReason::NotAuthorized)
    );
    assert_eq!(
        ask(&http, "root", "x").await,
        SourceDecision::Allow {
            superuser: true,
            acl: Some(json!([{"topic": "#"}]))
        }
    );
    assert_eq!(
        ask(&http, "nocontent", "x").await,
        SourceDecision::Allow {
            superuser: false,
            acl: None
        }
    );
    assert_eq!(ask(&http, "stranger", "x").await, SourceDecision::Ignore);

    let first = service.requests.lock()[0].1.clone();
    assert_eq!(
        first,
        json!({"clientid": "sensor-1", "username": "alice", "password": "right",
               "peerhost": "127.0.0.9", "listener": "tls"})
    );
    assert_eq!(http.authenticate(&client(None), None).await, SourceDecision::Ignore);
    let anonymous = service.requests.lock().last().unwrap().1.clone();
    assert_eq!(anonymous["username"], Value::Null);
    assert_eq!(anonymous["password"], Value::Null);
}

#[tokio::test]
async fn answers_are_cached_per_password_until_the_ttl() {
    let (addr, service) = start().await;
    let http = source(addr, |c| c.cache_ttl = Duration::from_millis(300));
    for _ in 0..5 {
        assert!(matches!(
            ask(&http, "alice", "right").await,
            SourceDecision::Allow { .. }
        ));
        assert!(matches!(ask(&http, "alice", "wrong").await, SourceDecision::Deny(_)));
        assert_eq!(ask(&http, "stranger", "x").await, SourceDecision::Ignore);
    }
    assert_eq!(
        service.count("authn"),
        3,
        "one request per distinct client and password"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    ask(&http, "alice", "right").await;
    assert_eq!(service.count("authn"), 4, "asked again after the TTL");

    let uncached = source(addr, |c| c.cache_capacity = 0);
    ask(&uncached, "alice", "right").await;
    ask(&uncached, "alice", "right").await;
    assert_eq!(service.count("authn"), 6);
}

#[tokio::test]
async fn errors_follow_on_error_and_are_not_cached() {
    let (addr, service) = start().await;
    let ignoring = source(addr, |_| {});
    let denying = source(addr, |c| c.on_error = OnError::Deny);
    for user in ["error", "garbage", "unknown-result", "huge"] {
        assert_eq!(ask(&ignoring, user, "x").await, SourceDecision::Ignore, "{user}");
        assert_eq!(
            ask(&denying, user, "x").await,
            SourceDecision::Deny(DenyReason::NotAuthorized),
            "{user}"
        );
    }
    ask(&ignoring, "error", "x").await;
    assert_eq!(service.count("authn"), 9, "errors are asked again");

    // Nobody listens here: connection refused.
    let dead = HttpAuthSource::new(HttpAuthConfig {
        authn_url: Some("http://127.0.0.1:1/authn".into()),
        on_error: OnError::Deny,
        ..HttpAuthConfig::default()
    })
    .unwrap();
    assert_eq!(
        ask(&dead, "alice", "right").await,
        SourceDecision::Deny(DenyReason::NotAuthorized)
    );
}

#[tokio::test]
async fn a_slow_service_times_out() {
    let (addr, _service) = start().await;
    let http = source(addr, |c| {
        c.timeout = Duration::from_millis(200);
        c.on_error = OnError::Deny;
    });
    let started = Instant::now();
    assert_eq!(
        ask(&http, "slow", "x").await,
        SourceDecision::Deny(DenyReason::NotAuthorized)
    );
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

#[tokio::test]
async fn requests_beyond_max_in_flight_wait_at_most_the_timeout() {
    let (addr, service) = start().await;
    let http = source(addr, |c| {
        c.max_in_flight = 2;
        c.timeout = Duration::from_millis(300);
        c.on_error = OnError::Deny;
    });
    // Two requests in flight elsewhere hold both slots.
    let held = http.in_flight.acquire_many(2).await.unwrap();
    let started = Instant::now();
    assert_eq!(
        ask(&http, "alice", "right").await,
        SourceDecision::Deny(DenyReason::NotAuthorized)
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(1),
        "{waited:?}"
    );
    assert_eq!(service.count("authn"), 0, "the request never reached the service");
    drop(held);
    assert!(matches!(
        ask(&http, "alice", "right").await,
        SourceDecision::Allow { .. }
    ));
}

fn question(action: Action, topic: &str) -> Question<'_> {
    Question {
        action,
        topic,
        qos: ractmq_codec::QoS::AtLeastOnce,
        retain: action == Action::Publish,
    }
}

#[tokio::test]
async fn authorization_answers_are_not_cached_here_and_errors_follow_on_error() {
    let (addr, service) = start().await;
    let http = source(addr, |_| {});
    let alice = client(Some("alice"));
    for _ in 0..2 {
        assert_eq!(
            http.authorize(&alice, question(Action::Publish, "allowed/a")).await,
            AuthzAnswer::Allow
        );
        assert_eq!(
            http.authorize(&alice, question(Action::Subscribe, "denied/#")).await,
            AuthzAnswer::Deny
        );
        assert_eq!(
            http.authorize(&alice, question(Action::Publish, "other")).await,
            AuthzAnswer::Ignore
        );
    }
    assert_eq!(service.count("authz"), 6, "each client caches its own (http_authz.rs)");
    let seen = service.requests.lock()[1].1.clone();
    assert_eq!(
        seen,
        json!({"clientid": "sensor-1", "username": "alice", "peerhost": "127.0.0.9", "listener": "tls",
               "action": "subscribe", "topic": "denied/#", "qos": 1, "retain": false})
    );
    assert_eq!(service.requests.lock()[0].1["retain"], true);

    let down = |on_error| {
        source(addr, |c| {
            c.authz_url = Some(format!("http://{addr}/authz/down"));
            c.on_error = on_error;
        })
    };
    assert_eq!(
        down(OnError::Ignore)
            .authorize(&alice, question(Action::Publish, "allowed/a"))
            .await,
        AuthzAnswer::Ignore
    );
    assert_eq!(
        down(OnError::Deny)
            .authorize(&alice, question(Action::Publish, "allowed/a"))
            .await,
        AuthzAnswer::Deny
    );

    let no_urls = HttpAuthSource::new(HttpAuthConfig::default()).unwrap();
    assert!(!no_urls.authorizes());
    assert_eq!(
        no_urls.authorize(&alice, question(Action::Publish, "allowed/a")).await,
        AuthzAnswer::Ignore
    );
    assert_eq!(ask(&no_urls, "alice", "right").await, SourceDecision::Ignore);
}

#[tokio::test]
async fn a_password_that_is_not_utf8_is_not_sent() {
    let (addr, service) = start().await;
    let http = source(addr, |_| {});
    let decision = http.authenticate(&client(Some("alice")), Some(&[0xff, 0xfe])).await;
    assert_eq!(decision, SourceDecision::Ignore);
    assert_eq!(service.count("authn"), 0);
}

#[test]
fn bad_configuration_is_refused() {
    let with = |f: fn(&mut HttpAuthConfig)| {
        let mut c = HttpAuthConfig::default();
        f(&mut c);
        HttpAuthSource::new(c).unwrap_err()
    };
    assert!(matches!(
        with(|c| c.authn_url = Some("not a url".into())),
        HttpAuthError::InvalidUrl(_)
    ));
    assert!(matches!(
        with(|c| c.authz_url = Some("ftp://x/".into())),
        HttpAuthError::InvalidUrl(_)
    ));
    assert!(matches!(
        with(|c| {
            c.headers.insert("bad header".into(), "x".into());
        }),
        HttpAuthError::InvalidHeader(_)
    ));
    assert!(matches!(
        with(|c| {
            c.headers.insert("x-token".into(), "line\nbreak".into());
        }),
        HttpAuthError::InvalidHeader(_)
    ));
    assert_eq!(with(|c| c.max_in_flight = 0), HttpAuthError::NoRequestsAllowed);
}

#[tokio::test]
async fn configured_headers_are_sent() {
    let seen = Arc::new(Mutex::new(None));
    let app = {
        let seen = seen.clone();
        Router::new().route(
            "/authn",
            post(move |headers: axum::http::HeaderMap| async move {
                *seen.lock() = headers.get("authorization").map(|v| v.to_str().unwrap().to_string());
                Json(json!({"result": "allow"}))
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = source(addr, |c| {
        c.headers.insert("Authorization".into(), "Bearer service-token".into());
    });
    assert!(matches!(
        ask(&http, "alice", "right").await,
        SourceDecision::Allow { .. }
    ));
    assert_eq!(seen.lock().as_deref(), Some("Bearer service-token"));
}
