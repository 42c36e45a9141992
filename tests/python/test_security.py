"""Security with real third-party tools: a password file written by the real ``mosquitto_passwd`` and a
Mosquitto-format ACL with ``mosquitto_pub``/``mosquitto_sub``; ``ractmq ctl users`` and ``banned`` as the
operator types them; JWTs signed by PyJWT; an HTTP authentication service started by the test."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
import time

import jwt
import pytest

from conftest import broker_binary
from mqtt_support import MosquittoSub, PahoClient, mqtt

needs_mosquitto = pytest.mark.skipif(
    not (shutil.which("mosquitto_passwd") and shutil.which("mosquitto_pub")),
    reason="mosquitto and mosquitto-clients not installed (apt-get install mosquitto mosquitto-clients)",
)


def paho(broker, client_id: str, user: str | None = None, password: str | None = None,
         protocol: int = mqtt.MQTTv311) -> PahoClient:
    c = PahoClient(broker.host, broker.port, client_id=client_id, protocol=protocol, name=client_id)
    if user is not None:
        c.paho.username_pw_set(user, password)
    return c


def pub(broker, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), *args],
                          capture_output=True, text=True, timeout=20)


def ctl(broker, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(broker_binary()), "ctl", *args, "--api", broker.api_addr()],
                          capture_output=True, text=True, timeout=20)


@needs_mosquitto
def test_mosquitto_passwd_file_and_acl_with_mosquitto_clients(broker_factory, tmp_path):
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "alice", "a-pass"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "bob", "b-pass"], check=True)
    acl = tmp_path / "acl"
    acl.write_text(
        "user alice\ntopic readwrite sensors/#\n\n"
        "user bob\ntopic read sensors/#\ntopic read clients/#\n\n"
        "pattern write clients/%u/#\n"
    )
    broker = broker_factory("--password-file", str(passwords), "--acl-file", str(acl),
                            "--allow-anonymous", "false")

    sub = MosquittoSub(broker.host, broker.port, ["-u", "bob", "-P", "b-pass", "-q", "1", "-t", "sensors/#",
                                                  "-t", "clients/#", "-C", "2"])
    try:
        sub.wait_subscribed()
        # bob may read sensors/# but not write it: his publish is acknowledged (3.1.1) and dropped.
        assert pub(broker, "-u", "bob", "-P", "b-pass", "-q", "1", "-t", "sensors/t", "-m", "from bob").returncode == 0
        assert pub(broker, "-u", "alice", "-P", "a-pass", "-q", "1", "-t", "sensors/t", "-m", "from alice").returncode == 0
        assert pub(broker, "-u", "alice", "-P", "a-pass", "-q", "1", "-t", "clients/alice/up", "-m", "mine").returncode == 0
        got = sub.finish()
    finally:
        sub.kill()
    assert [(m.topic, m.payload) for m in got] == [("sensors/t", "from alice"), ("clients/alice/up", "mine")], \
        sub.describe()

    wrong = pub(broker, "-u", "alice", "-P", "nope", "-t", "sensors/t", "-m", "x")
    assert wrong.returncode != 0 and "bad user name or password" in (wrong.stderr + wrong.stdout).lower(), wrong
    anonymous = pub(broker, "-t", "sensors/t", "-m", "x")
    assert anonymous.returncode != 0 and "not authori" in (anonymous.stderr + anonymous.stdout).lower(), anonymous


@needs_mosquitto
def test_a_denied_subscription_gets_0x87_in_mqtt5(broker_factory, tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite test/#\ntopic deny test/nosubscribe\n")
    broker = broker_factory("--acl-file", str(acl))
    c = paho(broker, "v5", protocol=mqtt.MQTTv5)
    c.connect_ok()
    assert c.subscribe("test/nosubscribe", qos=2) == [0x87]
    assert c.subscribe("test/ok", qos=1) == [1]
    c.close()
    v3 = paho(broker, "v3")
    v3.connect_ok()
    assert v3.subscribe("test/nosubscribe", qos=2) == [0x80]
    v3.close()


def test_ctl_users_and_banned_as_the_operator_types_them(broker_factory, tmp_path):
    broker = broker_factory("--user-db", str(tmp_path / "users.json"), "--allow-anonymous", "false")
    added = ctl(broker, "users", "add", "dora", "d-pass")
    assert added.returncode == 0 and added.stdout.strip() == "added user dora", added
    paho(broker, "dora-1", "dora", "d-pass").connect_ok()
    # paho reports 3.1.1 return codes as their 5.0 reason codes: 4 as 0x86, 5 as 0x87.
    assert paho(broker, "dora-2", "dora", "wrong").connect().reason_code == 0x86  # bad user name or password

    banned = ctl(broker, "banned", "add", "clientid", "dora-3")
    assert banned.returncode == 0 and banned.stdout.strip() == "banned clientid dora-3", banned
    assert paho(broker, "dora-3", "dora", "d-pass").connect().reason_code == 0x87  # 3.1.1: 5, not authorized
    v5 = paho(broker, "dora-3", "dora", "d-pass", protocol=mqtt.MQTTv5)
    assert v5.connect().reason_code == 0x8A  # Banned
    assert "dora-3" in ctl(broker, "banned", "list").stdout


def test_jwt_signed_by_pyjwt_with_its_acl_claim(broker_factory):
    secret = "s3cret-for-tests"
    broker = broker_factory("--jwt-secret", secret)
    now = int(time.time())
    token = jwt.encode({"sub": "meter", "exp": now + 60, "acl": {"pub": ["meters/up"], "sub": ["meters/down"]}},
                       secret, algorithm="HS256")
    c = paho(broker, "meter-1", "meter", token, protocol=mqtt.MQTTv5)
    c.connect_ok()
    assert c.subscribe("meters/down", qos=1) == [1]
    assert c.subscribe("meters/#", qos=1) == [0x87], "the claim allows meters/down only"
    c.close()

    expired = jwt.encode({"sub": "meter", "exp": now - 120}, secret, algorithm="HS256")
    assert paho(broker, "meter-2", "meter", expired, protocol=mqtt.MQTTv5).connect().reason_code == 0x86
    forged = jwt.encode({"sub": "meter", "exp": now + 60}, "another-secret", algorithm="HS256")
    assert paho(broker, "meter-3", "meter", forged, protocol=mqtt.MQTTv5).connect().reason_code == 0x86
    assert paho(broker, "anon", protocol=mqtt.MQTTv5).connect().reason_code == 0x87, "a source is configured"


class _AuthService(http.server.BaseHTTPRequestHandler):
    """EMQX-shaped HTTP authentication: allow password "good", deny the rest; remembers each request."""

    requests: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _AuthService.requests.append(body)
        result = "allow" if body.get("password") == "good" else "deny"
        answer = json.dumps({"result": result, "is_superuser": False}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def test_an_http_authentication_service(broker_factory):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AuthService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/auth"
        broker = broker_factory("--auth-http-url", url)
        paho(broker, "h-1", "hank", "good").connect_ok()
        # Denied by the service: 3.1.1 return code 5 (Not authorized), which paho reports as 0x87.
        assert paho(broker, "h-2", "hank", "bad").connect().reason_code == 0x87
        first = _AuthService.requests[0]
        assert (first["clientid"], first["username"], first["password"]) == ("h-1", "hank", "good")
        assert first["peerhost"] == "127.0.0.1"
    finally:
        server.shutdown()
