//! Devices connect over TCP, TLS, WebSocket and WebSocket on TLS, and all of them meet in one broker: a message
//! published over one transport reaches subscribers on every other. A client that fails its TLS handshake or
//! its WebSocket upgrade, or breaks the WebSocket rules, is closed alone. Certificates are made here with
//! rcgen; the clients are tokio-rustls and tokio-tungstenite over real sockets. (tests/python drives the same
//! listeners with paho-mqtt and mosquitto_pub/sub.)

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{connect_v311, publish_v311, start_with, subscribe_v311, test_config, Raw};
use ractmq::parts::broker::WsBytes;
use ractmq::tls::ServerFiles;
use ractmq::{Broker, ListenerSpec};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A CA, a server certificate for 127.0.0.1 and a client certificate, written as PEM files.
struct Pki {
    dir: std::path::PathBuf,
    ca_pem: String,
    client_cert: String,
    client_key: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("ractmq-listeners-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let signed = |names: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &ca, &ca_key)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = signed(vec!["127.0.0.1".into(), "localhost".into()]);
        let (client_cert, client_key) = {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec!["device-1".to_string()]).unwrap();
            params.distinguished_name.push(rcgen::DnType::CommonName, "meter-7");
            (params.signed_by(&key, &ca, &ca_key).unwrap().pem(), key.serialize_pem())
        };
        let pki = Pki {
            dir,
            ca_pem: ca.pem(),
            client_cert,
            client_key,
        };
        pki.write("server-cert.pem", &server_cert);
        pki.write("server-key.pem", &server_key);
        pki.write("ca.pem", &pki.ca_pem);
        pki
    }

    fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn server_config(&self, require_client_certs: bool) -> Arc<rustls::ServerConfig> {
        let (cert, key, ca) = (
            self.dir.join("server-cert.pem"),
            self.dir.join("server-key.pem"),
            self.dir.join("ca.pem"),
        );
        ractmq::tls::server_config(&ServerFiles {
            cert: (&cert, "cert"),
            key: (&key, "key"),
            client_ca: require_client_certs.then_some((ca.as_path(), "ca")),
        })
        .unwrap()
    }

    /// A client trusting the CA, showing the client certificate if `with_cert`.
    fn connector(&self, with_cert: bool) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(ractmq::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = if with_cert {
            let cert = CertificateDer::from_pem_slice(self.client_cert.as_bytes()).unwrap();
            let key = PrivateKeyDer::from_pem_slice(self.client_key.as_bytes()).unwrap();
            builder.with_client_auth_cert(vec![cert], key).unwrap()
        } else {
            builder.with_no_client_auth()
        };
        TlsConnector::from(Arc::new(config))
    }
}

fn spec(listen: &str, tls: Option<Arc<rustls::ServerConfig>>, websocket_path: Option<&str>) -> ListenerSpec {
    ListenerSpec {
        listen: listen.parse().unwrap(),
        tls,
        websocket_path: websocket_path.map(Into::into),
    }
}

/// A broker with a TLS, a WebSocket and a secure WebSocket listener besides TCP.
async fn broker_with_every_transport(pki: &Pki) -> Broker {
    let tls = pki.server_config(false);
    let mut config = test_config();
    config.listeners = vec![
        spec("127.0.0.1:0", Some(tls.clone()), None),
        spec("127.0.0.1:0", None, Some("/mqtt")),
        spec("127.0.0.1:0", Some(tls), Some("/mqtt")),
    ];
    start_with(config).await
}

async fn tls_stream(pki: &Pki, addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    pki.connector(false).connect(name, tcp).await.expect("TLS handshake")
}

fn ws_request(
    addr: SocketAddr,
    scheme: &str,
    path: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = format!("{scheme}://{addr}{path}").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
    request
}

async fn ws_raw(addr: SocketAddr) -> Raw {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, response) = tokio_tungstenite::client_async(ws_request(addr, "ws", "/mqtt"), tcp)
        .await
        .expect("WebSocket upgrade");
    assert_eq!(response.headers()["sec-websocket-protocol"], "mqtt");
    Raw::over(WsBytes::new(ws))
}

async fn wss_raw(pki: &Pki, addr: SocketAddr) -> Raw {
    let tls = tls_stream(pki, addr).await;
    let (ws, _) = tokio_tungstenite::client_async(ws_request(addr, "wss", "/mqtt"), tls)
        .await
        .expect("WebSocket upgrade over TLS");
    Raw::over(WsBytes::new(ws))
}

/// CONNECT (3.1.1) and SUBSCRIBE to `filter` at QoS 1, checking both acks.
async fn subscribed(mut raw: Raw, id: &str, filter: &str) -> Raw {
    raw.send(&connect_v311(id)).await;
    assert_eq!(raw.read_frame().await, [0x20, 2, 0, 0], "{id}: CONNACK accepted");
    raw.send(&subscribe_v311(1, filter, 1)).await;
    assert_eq!(
        raw.read_frame().await,
        [0x90, 3, 0, 1, 1],
        "{id}: SUBACK granting QoS 1"
    );
    raw
}

/// The topic and payload of the PUBLISH `raw` receives next (acknowledging it if QoS 1).
async fn next_publish(raw: &mut Raw) -> (String, Vec<u8>) {
    let frame = raw.read_frame().await;
    assert_eq!(frame[0] & 0xF0, 0x30, "a PUBLISH, got {frame:?}");
    let qos = (frame[0] >> 1) & 3;
    let mut i = 1;
    while frame[i] & 0x80 != 0 {
        i += 1;
    }
    let body = &frame[i + 1..];
    let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let topic = String::from_utf8(body[2..2 + topic_len].to_vec()).unwrap();
    let mut rest = &body[2 + topic_len..];
    if qos > 0 {
        raw.send(&[0x40, 2, rest[0], rest[1]]).await;
        rest = &rest[2..];
    }
    (topic, rest.to_vec())
}

#[tokio::test]
async fn a_message_published_over_any_transport_reaches_subscribers_on_every_transport() {
    let pki = Pki::new("all");
    let broker = broker_with_every_transport(&pki).await;
    let (tls, ws, wss) = (
        broker.listener_addr("tls").unwrap(),
        broker.listener_addr("ws").unwrap(),
        broker.listener_addr("wss").unwrap(),
    );
    let mut subscribers = vec![
        subscribed(Raw::connect(broker.mqtt_addr()).await, "sub-tcp", "t/#").await,
        subscribed(Raw::over(tls_stream(&pki, tls).await), "sub-tls", "t/#").await,
        subscribed(ws_raw(ws).await, "sub-ws", "t/#").await,
        subscribed(wss_raw(&pki, wss).await, "sub-wss", "t/#").await,
    ];
    let publishers = vec![
        ("tcp", Raw::connect(broker.mqtt_addr()).await),
        ("tls", Raw::over(tls_stream(&pki, tls).await)),
        ("ws", ws_raw(ws).await),
        ("wss", wss_raw(&pki, wss).await),
    ];
    for (kind, mut publisher) in publishers {
        publisher.send(&connect_v311(&format!("pub-{kind}"))).await;
        assert_eq!(publisher.read_frame().await, [0x20, 2, 0, 0]);
        let payload = format!("over {kind}");
        publisher
            .send(&publish_v311(&format!("t/{kind}"), 1, 7, false, payload.as_bytes()))
            .await;
        assert_eq!(publisher.read_frame().await, [0x40, 2, 0, 7], "PUBACK over {kind}");
        for sub in &mut subscribers {
            assert_eq!(
                next_publish(sub).await,
                (format!("t/{kind}"), payload.clone().into_bytes())
            );
        }
    }
}

#[tokio::test]
async fn a_client_failing_its_handshake_or_the_websocket_rules_is_closed_alone() {
    let pki = Pki::new("bad");
    let broker = broker_with_every_transport(&pki).await;
    let (tls, ws) = (
        broker.listener_addr("tls").unwrap(),
        broker.listener_addr("ws").unwrap(),
    );
    let mut bystander = subscribed(Raw::over(tls_stream(&pki, tls).await), "bystander", "b/#").await;

    // Plain MQTT to the TLS port: not a TLS ClientHello, so the connection is closed without a CONNACK.
    let mut plain = Raw::connect(tls).await;
    plain.send(&connect_v311("plain-on-tls")).await;
    let answer = plain.read_until_closed().await;
    assert!(
        !answer.starts_with(&[0x20]),
        "no CONNACK over a failed TLS handshake: {answer:?}"
    );

    // A WebSocket upgrade at another path is refused with 404.
    let tcp = TcpStream::connect(ws).await.unwrap();
    match tokio_tungstenite::client_async(ws_request(ws, "ws", "/elsewhere"), tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("expected 404, got {:?}", other.map(|(_, r)| r.status())),
    }

    // Only other subprotocols offered: 400.
    let tcp = TcpStream::connect(ws).await.unwrap();
    let mut request = ws_request(ws, "ws", "/mqtt");
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "chat".parse().unwrap());
    match tokio_tungstenite::client_async(request, tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("expected 400, got {:?}", other.map(|(_, r)| r.status())),
    }

    // A text message instead of binary ones closes that connection (MQTT 5 §6.0).
    let tcp = TcpStream::connect(ws).await.unwrap();
    let (mut text, _) = tokio_tungstenite::client_async(ws_request(ws, "ws", "/mqtt"), tcp)
        .await
        .unwrap();
    use futures_util::{SinkExt, StreamExt};
    text.send(Message::text("CONNECT")).await.unwrap();
    let closed = tokio::time::timeout(common::DEADLINE, async {
        while let Some(Ok(message)) = text.next().await {
            assert!(!message.is_binary(), "no MQTT answer to a text message");
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection is closed");

    // An MQTT packet split across WebSocket messages is put back together.
    let mut split = ws_raw(ws).await;
    let connect = connect_v311("split");
    split.send(&connect[..3]).await;
    split.send(&connect[3..]).await;
    assert_eq!(split.read_frame().await, [0x20, 2, 0, 0]);

    // The bystander saw none of it.
    split.send(&publish_v311("b/1", 1, 9, false, b"still here")).await;
    assert_eq!(split.read_frame().await, [0x40, 2, 0, 9]);
    assert_eq!(
        next_publish(&mut bystander).await,
        ("b/1".into(), b"still here".to_vec())
    );
}

#[tokio::test]
async fn with_a_client_ca_only_clients_showing_its_certificate_get_in() {
    let pki = Pki::new("mutual");
    let mut config = test_config();
    config.listeners = vec![spec("127.0.0.1:0", Some(pki.server_config(true)), None)];
    let broker = start_with(config).await;
    let addr = broker.listener_addr("tls").unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();

    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut trusted = pki
        .connector(true)
        .connect(name.clone(), tcp)
        .await
        .expect("a client with a certificate from the CA completes the handshake");
    trusted.write_all(&connect_v311("with-cert")).await.unwrap();
    let mut connack = [0u8; 4];
    trusted.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);

    // Without a certificate, TLS 1.3 lets the client finish its side first; the server's refusal arrives as
    // an alert on the first read, and no CONNACK ever does.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let refused = async {
        let mut stream = pki.connector(false).connect(name, tcp).await?;
        stream.write_all(&connect_v311("without-cert")).await?;
        let mut byte = [0u8; 1];
        match stream.read(&mut byte).await? {
            0 => Err(std::io::Error::other("closed")),
            _ => Ok(byte),
        }
    };
    let outcome = tokio::time::timeout(common::DEADLINE, refused).await.unwrap();
    assert!(outcome.is_err(), "no CONNACK without a client certificate: {outcome:?}");
}

/// With `tls_cert_as_username`, the client certificate names the user and authenticates the client: anonymous
/// clients are refused, yet a client showing a certificate with CN `meter-7` (SAN `device-1`) gets in without
/// a password, as `meter-7` with `cn` and as `device-1` with `san`.
#[tokio::test]
async fn a_client_certificate_can_be_the_user_name() {
    for (field, expected) in [
        (ractmq::CertIdentity::Cn, "meter-7"),
        (ractmq::CertIdentity::San, "device-1"),
    ] {
        let pki = Pki::new(&format!("cert-user-{expected}"));
        let mut config = test_config();
        config.listeners = vec![spec("127.0.0.1:0", Some(pki.server_config(true)), None)];
        config.tls_cert_as_username = Some(field);
        config.security.allow_anonymous = Some(false);
        let broker = start_with(config).await;
        let addr = broker.listener_addr("tls").unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = pki.connector(true).connect(name, tcp).await.unwrap();
        tls.write_all(&connect_v311("by-cert")).await.unwrap();
        let mut connack = [0u8; 4];
        tls.read_exact(&mut connack).await.unwrap();
        assert_eq!(connack, [0x20, 2, 0, 0], "{field:?}: authenticated by the certificate");
        let client = broker.view().client("by-cert").unwrap();
        assert_eq!(client.username.as_deref(), Some(expected), "{field:?}");
        // On plain TCP the same client, without a certificate, is anonymous and refused.
        let mut raw = Raw::connect(broker.mqtt_addr()).await;
        raw.send(&connect_v311("no-cert")).await;
        assert_eq!(raw.read_frame().await[3], 5);
        broker.shutdown().await;
    }
}
