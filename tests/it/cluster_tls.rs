//! TLS between nodes: two `ractmq` processes with certificates from one CA (made here with rcgen) form a
//! cluster and route between each other; a node whose certificate comes from another CA cannot join, and the
//! node that dialled says so in one line.

use crate::common;

use std::path::Path;

use common::cluster::{free_addrs, until_all_list, Node, COOKIE};
use common::Client;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rumqttc::QoS;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    Ca {
        cert: params.self_signed(&key).unwrap(),
        key,
    }
}

/// Write `node`'s certificate (signed by `ca`), key and the CA into `dir`; the flags that use them.
fn tls_flags(dir: &Path, node: &str, ca: &Ca, trusted: &Ca) -> Vec<String> {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![node.to_string()])
        .unwrap()
        .signed_by(&key, &ca.cert, &ca.key)
        .unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(format!("{node}-{name}.pem"));
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    vec![
        "--cluster-tls-cert".into(),
        write("cert", cert.pem()),
        "--cluster-tls-key".into(),
        write("key", key.serialize_pem()),
        "--cluster-tls-ca".into(),
        write("ca", trusted.cert.pem()),
    ]
}

fn node(i: usize, addrs: &[std::net::SocketAddr], tls: Vec<String>) -> Node {
    let mut args = vec!["--cookie".to_string(), COOKIE.to_string()];
    if i > 0 {
        args.extend(["--seed".to_string(), format!("n1@{}", addrs[2])]);
    }
    args.extend(tls);
    Node::new(&format!("n{}", i + 1), addrs[i], addrs[2 + i], &args)
}

#[tokio::test]
async fn nodes_with_certificates_from_the_cluster_ca_link_over_tls_and_route() {
    let dir = std::env::temp_dir().join(format!("ractmq-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = ca();
    let addrs = free_addrs(4);
    let mut nodes = [
        node(0, &addrs, tls_flags(&dir, "n1", &ca, &ca)),
        node(1, &addrs, tls_flags(&dir, "n2", &ca, &ca)),
    ];
    for n in &mut nodes {
        n.start();
    }
    until_all_list(&[&nodes[0], &nodes[1]], "n1,n2").await;
    let mut sub = Client::connect(nodes[1].mqtt, "sub-n2").await;
    sub.subscribe("secure/#", QoS::AtLeastOnce).await;
    let publisher = Client::connect(nodes[0].mqtt, "pub-n1").await;
    publisher.publish("secure/1", QoS::AtLeastOnce, false, "over TLS").await;
    assert_eq!(&sub.expect_publish().await.payload[..], b"over TLS");
}

#[tokio::test]
async fn a_node_with_a_certificate_from_another_ca_cannot_join() {
    let dir = std::env::temp_dir().join(format!("ractmq-tls-other-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, other) = (ca(), ca());
    let addrs = free_addrs(4);
    let mut nodes = [
        node(0, &addrs, tls_flags(&dir, "n1", &ca, &ca)),
        node(1, &addrs, tls_flags(&dir, "n2", &other, &ca)),
    ];
    for n in &mut nodes {
        n.start();
    }
    let n2 = &nodes[1];
    common::eventually_within(common::cluster::WAIT, "n2 says why it cannot join n1", || {
        n2.logged("closed the link during the TLS handshake") && n2.logged("--cluster-tls-ca")
    })
    .await;
    until_all_list(&[&nodes[0]], "n1").await;
}
