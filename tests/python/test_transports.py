"""ractmq's TLS, WebSocket and secure WebSocket listeners with third-party clients.

paho-mqtt connects over TLS (Python's ssl) and over WebSocket (its own implementation), mosquitto_pub and
mosquitto_sub over TLS (OpenSSL); the certificates are made with the openssl command for each test. Messages
cross between transports: one broker serves them all.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from mqtt_support import TIMEOUT, MosquittoSub, PahoClient, connect_packet, mosquitto_pub, mqtt, sample, scrape

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="the openssl command is needed to make certificates")


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _signed(name: str, subject: str, ext: str, tmp: Path) -> None:
    (tmp / f"{name}.ext").write_text(ext + "\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=tmp)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=tmp)


@pytest.fixture
def pki(tmp_path) -> Pki:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=ractmq test CA", cwd=tmp_path)
    _signed("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost", tmp_path)
    _signed("client", "/CN=device-1", "extendedKeyUsage=clientAuth", tmp_path)
    t = tmp_path
    return Pki(t / "ca.pem", t / "server.pem", t / "server.key", t / "client.pem", t / "client.key")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_accepting(port: int) -> None:
    end = time.monotonic() + TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > end:
                raise AssertionError(f"nothing accepts on port {port}") from None
            time.sleep(0.05)


@dataclass
class Endpoint:
    host: str
    port: int


@pytest.fixture
def secure(broker_factory, pki):
    """A broker with TLS, WebSocket and secure WebSocket listeners; ``secure.tls`` etc. are their endpoints."""

    def start(*extra: str):
        ports = {kind: _free_port() for kind in ("tls", "ws", "wss")}
        broker = broker_factory(
            "--tls-listen", f"127.0.0.1:{ports['tls']}", "--ws-listen", f"127.0.0.1:{ports['ws']}",
            "--wss-listen", f"127.0.0.1:{ports['wss']}", "--tls-cert", str(pki.server_cert),
            "--tls-key", str(pki.server_key), *extra,
        )
        for port in ports.values():
            _wait_accepting(port)
        broker.tls, broker.ws, broker.wss = (Endpoint("127.0.0.1", ports[k]) for k in ("tls", "ws", "wss"))
        return broker

    return start


@pytest.fixture
def paho(request):
    made: list[PahoClient] = []

    def make(endpoint, client_id: str, **kwargs) -> PahoClient:
        c = PahoClient(endpoint.host, endpoint.port, client_id=client_id, name=client_id, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["v311", "v5"])
def test_paho_over_each_transport_reaches_paho_on_every_other(secure, paho, pki, protocol):
    b = secure()
    trust = {"ca_certs": str(pki.ca)}
    transports = {
        "tcp": (Endpoint(b.host, b.port), {}),
        "tls": (b.tls, {"tls": trust}),
        "ws": (b.ws, {"transport": "websockets"}),
        "wss": (b.wss, {"transport": "websockets", "tls": trust}),
    }
    subscribers, publishers = {}, {}
    for kind, (endpoint, options) in transports.items():
        sub = paho(endpoint, f"sub-{kind}", protocol=protocol, **options)
        sub.connect_ok()
        assert sub.subscribe("x/#", qos=1) == [1]
        subscribers[kind] = sub
    for kind, (endpoint, options) in transports.items():
        pub = paho(endpoint, f"pub-{kind}", protocol=protocol, **options)
        pub.connect_ok()
        pub.publish(f"x/{kind}", f"from {kind}".encode(), qos=1)
        for sub in subscribers.values():
            sub.expect(f"x/{kind}", f"from {kind}".encode(), qos=1)
        publishers[kind] = pub

    # Each listener counts its own connections, in the REST API and in the metrics.
    assert _connections(b) == {"mqtt:tcp": 2, "mqtt:tls": 2, "mqtt:ws": 2, "mqtt:wss": 2}
    families = scrape(b)
    for kind in transports:
        assert sample(families, "ractmq_listener_connections", listener=f"mqtt:{kind}") == 2
    subscribers["ws"].close()
    publishers["ws"].close()
    end = time.monotonic() + TIMEOUT
    while _connections(b)["mqtt:ws"] != 0:
        assert time.monotonic() < end, f"the WebSocket connections still counted: {_connections(b)}"
        time.sleep(0.02)
    assert _connections(b) == {"mqtt:tcp": 2, "mqtt:tls": 2, "mqtt:ws": 0, "mqtt:wss": 2}


def _connections(broker) -> dict:
    with urllib.request.urlopen(f"http://{broker.api_addr()}/api/v1/listeners", timeout=10) as r:
        return {listener["name"]: listener["connections"] for listener in json.load(r)}


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_clients_over_tls(secure, pki, version):
    b = secure()
    tls = ["--cafile", str(pki.ca)]
    sub = MosquittoSub(b.tls.host, b.tls.port, ["-V", version, "-q", "2", "-t", "secure/#", "-C", "2", *tls])
    try:
        sub.wait_subscribed()
        mosquitto_pub(b.tls.host, b.tls.port, ["-V", version, "-q", "2", "-t", "secure/a", "-m", "over TLS", *tls])
        # and from plain TCP to the TLS subscriber
        mosquitto_pub(b.host, b.port, ["-V", version, "-q", "1", "-t", "secure/b", "-m", "from TCP"])
        got = sub.finish()
        assert [(m.topic, m.payload, m.qos) for m in got] == [("secure/a", "over TLS", 2), ("secure/b", "from TCP", 1)]
    finally:
        sub.kill()


def test_mosquitto_refuses_a_broker_certificate_from_another_ca(secure, pki, tmp_path):
    b = secure()
    other = tmp_path / "other"
    other.mkdir()
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=someone else", cwd=other)
    res = subprocess.run(
        ["mosquitto_pub", "-h", b.tls.host, "-p", str(b.tls.port), "--cafile", str(other / "ca.pem"),
         "-t", "t", "-m", "m"], capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert res.returncode != 0, "a certificate the client does not trust must fail the handshake"


def test_with_a_client_ca_only_clients_showing_its_certificate_get_in(secure, paho, pki):
    b = secure("--tls-client-ca", str(pki.ca))
    # Without a certificate: with TLS 1.3 the client may finish its side of the handshake; the broker's
    # refusal then arrives as an alert (or a closed socket) where the CONNACK would have been.
    context = ssl.create_default_context(cafile=str(pki.ca))
    answer = b""
    with socket.create_connection((b.tls.host, b.tls.port), timeout=TIMEOUT) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(connect_packet("no-cert"))
                answer = s.recv(4)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            pass
    assert answer == b"", f"no CONNACK without a client certificate, got {answer!r}"
    device = paho(b.tls, "device-1", tls={"ca_certs": str(pki.ca), "certfile": str(pki.client_cert),
                                          "keyfile": str(pki.client_key)})
    device.connect_ok()
    assert device.subscribe("d/1", qos=1) == [1]
