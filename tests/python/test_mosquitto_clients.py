"""ractmq against the mosquitto command-line clients (mosquitto_pub / mosquitto_sub as subprocesses)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mqtt_support import MosquittoSub, PahoClient, mosquitto_pub

pytestmark = pytest.mark.skipif(
    not (shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub")),
    reason="mosquitto-clients not installed (apt-get install mosquitto-clients)",
)

VERSIONS = ["mqttv31", "mqttv311", "mqttv5"]


@pytest.fixture
def subs():
    started: list[MosquittoSub] = []

    def start(broker, *args: str) -> MosquittoSub:
        s = MosquittoSub(broker.host, broker.port, list(args))
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


def pub(broker, *args: str) -> None:
    mosquitto_pub(broker.host, broker.port, list(args))


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("version", VERSIONS)
def test_pub_sub_roundtrip(broker, subs, version, qos):
    sub = subs(broker, "-V", version, "-q", str(qos), "-t", "mq/+/t", "-C", "2")
    sub.wait_subscribed()
    pub(broker, "-V", version, "-q", str(qos), "-t", "mq/a/t", "-m", f"hello {version} q{qos}")
    pub(broker, "-V", version, "-q", str(qos), "-t", "mq/b/t", "-m", "second message")
    got = sub.finish()
    assert [(m.topic, m.payload, m.qos, m.retain) for m in got] == [
        ("mq/a/t", f"hello {version} q{qos}", qos, False),
        ("mq/b/t", "second message", qos, False),
    ], sub.describe()


def test_effective_qos_is_min(broker, subs):
    sub = subs(broker, "-q", "1", "-t", "mqmin/t", "-C", "3")
    sub.wait_subscribed()
    for q in (2, 0, 1):
        pub(broker, "-q", str(q), "-t", "mqmin/t", "-m", f"pub at {q}")
    got = sub.finish()
    assert [(m.payload, m.qos) for m in got] == [("pub at 2", 1), ("pub at 0", 0), ("pub at 1", 1)], sub.describe()


def test_mixed_protocol_versions(broker, subs):
    sub = subs(broker, "-V", "mqttv5", "-q", "2", "-t", "mix/#", "-C", "3")
    sub.wait_subscribed()
    for v in VERSIONS:
        pub(broker, "-V", v, "-q", "2", "-t", f"mix/{v}", "-m", f"from {v}")
    got = sub.finish()
    assert [(m.topic, m.payload) for m in got] == [(f"mix/{v}", f"from {v}") for v in VERSIONS], sub.describe()


@pytest.mark.parametrize("version", VERSIONS)
def test_retained(broker, subs, version):
    pub(broker, "-V", version, "-q", "1", "-r", "-t", "mqret/t", "-m", "kept")
    sub = subs(broker, "-V", version, "-t", "mqret/t", "-C", "1")
    got = sub.finish()
    assert [(m.topic, m.payload, m.retain) for m in got] == [("mqret/t", "kept", True)], sub.describe()

    # Clear it with an empty retained message; a new subscriber then gets only the marker.
    pub(broker, "-V", version, "-q", "1", "-r", "-t", "mqret/t", "-n")
    sub = subs(broker, "-V", version, "-t", "mqret/t", "-C", "1")
    sub.wait_subscribed()
    pub(broker, "-V", version, "-t", "mqret/t", "-m", "marker")
    got = sub.finish()
    assert [(m.topic, m.payload, m.retain) for m in got] == [("mqret/t", "marker", False)], sub.describe()


@pytest.mark.parametrize("version", VERSIONS)
def test_will_on_sigkill(broker, subs, version):
    watcher = PahoClient(broker.host, broker.port, client_id="will-watcher")
    try:
        watcher.connect_ok()
        assert watcher.subscribe("mqwill/#", 1) == [1]
        victim = subs(broker, "-V", version, "-t", "mqwill/ignored", "--will-topic", f"mqwill/{version}",
                      "--will-payload", "killed", "--will-qos", "1")
        victim.wait_subscribed()
        victim.kill()  # SIGKILL: no DISCONNECT
        watcher.expect(f"mqwill/{version}", b"killed", qos=1, retain=False)
    finally:
        watcher.close()


def test_sys_broker_version(broker, subs):
    sub = subs(broker, "-t", "$SYS/broker/version", "-C", "1")
    got = sub.finish()
    assert len(got) == 1, sub.describe()
    assert got[0].topic == "$SYS/broker/version"
    assert got[0].payload.startswith("ractmq"), f"version payload {got[0].payload!r}"


def test_sys_broker_version_without_v(broker):
    """Exactly the command a user would type: prints just the payload."""
    res = subprocess.run(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", "$SYS/broker/version", "-C", "1",
         "-W", "5"],
        capture_output=True, text=True, timeout=10,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ractmq"), repr(res.stdout)
