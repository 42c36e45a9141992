"""Durability (issue 15) with real processes and real sockets: a node started with ``--data-dir DIR`` keeps its
persistent sessions, retained messages and operator state in DIR, and a node started again on the same DIR
after SIGTERM or ``kill -9`` has them all back before it accepts clients.

Every test starts ``ractmq start --data-dir DIR`` with its own temporary DIR (``Node``), kills or stops it and
starts it again on the same DIR and the same port. The main test (``test_kill_9_under_load``) runs 20
publishers of QoS 1 and QoS 2 into 50 persistent subscribers (MQTT 3.1.1 and 5, offline or slow), kills the
node at several points of the load and counts every delivery: every acknowledged QoS 1 message arrives at least
once at every subscriber of it, every QoS 2 message exactly once.

The contract these tests hold the node to (``--durability disk``, the default): a QoS 1/2 message that goes to
persistent sessions, or that is retained, gets its PUBACK/PUBREC only once those copies are committed. So a
PUBACK is also the tests' only way to know that what the node did before it is on disk: ``commit_barrier``
publishes one QoS 1 message to a persistent session and waits for its PUBACK.
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from conftest import Broker, _brokers_key, _free_port, broker_binary
from mqtt_support import (
    TIMEOUT,
    PacketTypes,
    PahoClient,
    RawClient,
    connect_packet,
    deadline_after,
    mqtt,
    packet,
    props,
    subscribe_packet,
)

# A node restoring its store may take longer than a fresh one to listen.
RESTART_TIMEOUT = 30.0
# How long a test waits for every expected delivery after a restart.
DELIVERY_TIMEOUT = 60.0
V311, V5 = mqtt.MQTTv311, mqtt.MQTTv5

# A tracing line of the node's own logs at a level that is not an error (text format, NO_COLOR):
# "2026-12-07T15:53:05.123456Z  INFO ractmq_broker::...: ...".
_INFO_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+\s+(INFO|DEBUG|TRACE)\s")


def wait_until(predicate, timeout: float, what: str, poll: float = 0.01):
    """Poll ``predicate`` until it returns something truthy; an assertion failure after ``timeout`` seconds."""
    end = deadline_after(timeout)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(poll)


# --------------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------------


class Node(Broker):
    """``ractmq start --data-dir DIR``, started again on the same port and DIR after a kill or a stop.

    One log file for all of its starts (attached to a failing test's report by conftest); ``api_addr`` reads
    the REST API address of the current start only."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, args: list[str]):
        super().__init__(binary, args, log_path)
        self.data_dir = data_dir
        self._log_offset = 0

    def command(self, port: int) -> list[str]:
        return [str(self.binary), "start", "--listen", f"{self.host}:{port}", "--api-listen", "127.0.0.1:0",
                "--sys-interval", "0", "--data-dir", str(self.data_dir), *self.args]

    def start(self, port: int | None = None, timeout: float = RESTART_TIMEOUT) -> "Node":
        """Start on ``port`` (a free one when None) and wait until it accepts TCP connections."""
        self.port = port or _free_port()
        self.stopped = False
        end = deadline_after(timeout)
        while True:
            self._spawn()
            accepting = self._wait_accepting(end)
            if accepting:
                return self
            text = self.logs()[self._log_offset:]
            self._terminate()
            # The old process's listening socket is gone with it; only retry on a port still busy.
            if "in use" in text.lower() and time.monotonic() < end:
                time.sleep(0.1)
                continue
            raise RuntimeError(f"ractmq on {self.data_dir} did not accept connections on port {self.port} "
                               f"within {timeout}s (exit code {self.proc.poll()}):\n{text[-3000:]}")

    def _spawn(self) -> None:
        cmd = self.command(self.port)
        env = dict(os.environ, NO_COLOR="1")
        env.setdefault("RUST_LOG", "info")
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(cmd)}\n".encode())
            log.flush()
            self._log_offset = log.tell()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

            try:
                with socket.create_connection(self.addr, timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.02)
        return False

    def logs(self) -> str:
        try:
            return self.log_path.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    def current_logs(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def api_addr(self) -> str:
        def find():
            m = re.search(r"REST API listening on http://(\S+)", self.current_logs())
            return m.group(1) if m else None

        return wait_until(find, TIMEOUT, f"the node on port {self.port} saying where its REST API listens")

    def kill9(self) -> None:
        """``kill -9``: no flush, no goodbye."""
        assert self.alive(), f"the node on port {self.port} died before the test killed it:\n{self.logs()[-3000:]}"
        self.proc.kill()
        self.proc.wait(10)

    def sigterm(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        assert self.alive(), f"the node on port {self.port} died before the test stopped it:\n{self.logs()[-3000:]}"
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"the node did not exit within {timeout}s of SIGTERM") from None

    def restart_after(self, how: str) -> "Node":
        """Stop the node (``kill`` for kill -9, ``term`` for SIGTERM), start it again on the same port and DIR."""
        port = self.port
        if how == "kill":
            self.kill9()
        else:
            code = self.sigterm()
            assert code == 0, f"SIGTERM: the node exited with {code}:\n{self.current_logs()[-3000:]}"
        started = time.monotonic()
        self.start(port)
        self.restart_seconds = time.monotonic() - started
        return self


@pytest.fixture
def nodes(request, tmp_path):
    """``nodes(*flags, data_dir=None)`` starts a Node (its own DIR under tmp_path unless given); every node is
    stopped at teardown. A test that kills a node checks its node itself: teardown does not fail on dead ones."""
    started: list[Node] = []
    request.node.stash[_brokers_key] = started

    def start(*flags: str, data_dir: Path | None = None, port: int | None = None) -> Node:
        d = data_dir or tmp_path / f"data-{len(started)}"
        n = Node(broker_binary(), d, tmp_path / f"ractmq-{len(started)}.log", list(flags))
        started.append(n)
        return n.start(port)

    yield start
    for n in started:
        n.stop()


@pytest.fixture
def paho_made():
    """PahoClients made by a test, closed at teardown."""
    made: list[PahoClient] = []
    yield made
    for c in made:
        c.close()


def paho(made: list, node: Node, client_id: str, protocol: int = V311, **kw) -> PahoClient:
    c = PahoClient(node.host, node.port, client_id=client_id, protocol=protocol, name=client_id, **kw)
    made.append(c)
    return c


def session_props(expiry: int = 3600):
    return props(PacketTypes.CONNECT, SessionExpiryInterval=expiry)


def commit_barrier(node: Node, made: list, tag: str = "barrier") -> None:
    """Returns once everything the node did before it is committed: a QoS 1 message to a persistent session
    gets its PUBACK only once committed, and commits are made in order."""
    sub = paho(made, node, f"{tag}-sub", clean_session=False)
    sub.connect_ok()
    assert sub.subscribe(f"{tag}/t", 1) == [1]
    sub.disconnect()
    pub = paho(made, node, f"{tag}-pub")
    pub.connect_ok()
    pub.publish(f"{tag}/t", b"sync", qos=1)
    pub.disconnect()


def session_connected(node: Node, client_id: str) -> bool | None:
    """Whether the node has ``client_id`` connected (None: no such session), from its REST API."""
    try:
        with urllib.request.urlopen(f"http://{node.api_addr()}/api/v1/clients/{client_id}", timeout=5) as r:
            return bool(json.load(r)["connected"])
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def ctl(node: Node, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(broker_binary()), "ctl", *args, "--api", node.api_addr()],
                          capture_output=True, text=True, timeout=20)


def store_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.rglob("*") if p.is_file() and p.stat().st_size > 0)


def error_lines(stderr: str) -> list[str]:
    """What the node said on stderr besides its own INFO/DEBUG/TRACE log lines."""
    return [line for line in stderr.splitlines() if line.strip() and not _INFO_LOG_LINE.match(line)]


def run_to_exit_or_listen(cmd: list[str], stderr_path: Path, port: int, timeout: float):
    """Start ``cmd``; ('exited', code) when it exits first, ('listening', proc) when ``port`` accepts first."""
    env = dict(os.environ, NO_COLOR="1")
    env.setdefault("RUST_LOG", "info")
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    end = deadline_after(timeout)
    while time.monotonic() < end:
        code = proc.poll()
        if code is not None:
            return "exited", code
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return "listening", proc
        except OSError:
            time.sleep(0.02)
    proc.kill()
    proc.wait(10)
    raise AssertionError(f"{' '.join(cmd)}: neither exited nor listened within {timeout}s:\n"
                         f"{stderr_path.read_text(errors='replace')[-3000:]}")


# --------------------------------------------------------------------------------------------------
# kill -9 under load
# --------------------------------------------------------------------------------------------------


class LoadClient:
    """A paho client kept across the node's restarts: the same object reconnects (paho keeps its QoS 1/2 state
    for a session that is not clean: messages in flight towards the node, QoS 2 ids awaiting PUBREL from it),
    each connection driven by its own network thread."""

    def __init__(self, node: Node, client_id: str, protocol: int):
        self.node = node
        self.client_id = client_id
        self.protocol = protocol
        kw = {} if protocol == V5 else {"clean_session": False}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                                  reconnect_on_failure=False, **kw)
        self.client.on_connect = self._on_connect
        self._connack: queue.Queue = queue.Queue()
        self._subacks: queue.Queue = queue.Queue()
        self.client.on_subscribe = lambda c, u, mid, codes, p: self._subacks.put([int(getattr(r, "value", r))
                                                                                   for r in codes])
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connack.put((int(getattr(reason_code, "value", reason_code)), bool(flags.session_present)))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rc = self.client.loop(timeout=0.05)
            except Exception:  # noqa: BLE001 - the node went away under us
                break
            if rc != mqtt.MQTT_ERR_SUCCESS:
                break

    def connect(self) -> bool:
        """Connect without a clean start (MQTT 5: session expiry 1 h); returns session present."""
        self._join()
        self._stop.clear()
        kw = {"clean_start": False, "properties": session_props()} if self.protocol == V5 else {}
        self.client.connect(self.node.host, self.node.port, keepalive=30, **kw)
        self._thread = threading.Thread(target=self._run, name=f"paho-{self.client_id}", daemon=True)
        self._thread.start()
        try:
            code, present = self._connack.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no CONNACK within {TIMEOUT}s") from None
        assert code == 0, f"{self.client_id}: CONNACK 0x{code:02x}"
        return present

    def subscribe(self, topic: str, qos: int) -> None:
        rc, _ = self.client.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        try:
            codes = self._subacks.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no SUBACK within {TIMEOUT}s") from None
        assert codes == [qos], f"{self.client_id}: SUBACK {codes}"

    def disconnect(self) -> None:
        self.client.disconnect()
        self._join()

    def connected(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join(TIMEOUT)
            assert not self._thread.is_alive(), f"{self.client_id}: network thread still running"
            self._thread = None

    def close(self) -> None:
        self._stop.set()
        try:
            self.client.disconnect()
        except Exception:  # noqa: BLE001
            pass
        if self._thread is not None:
            self._thread.join(TIMEOUT)
        try:
            sock = self.client.socket()
            if sock is not None:
                sock.close()
        except Exception:  # noqa: BLE001
            pass


class LoadSubscriber(LoadClient):
    """Counts every delivery of every payload id (a Counter, so a second copy is seen); a slow one takes a few
    milliseconds over each message before paho acknowledges it."""

    def __init__(self, node: Node, index: int, protocol: int, slow: bool, publishers: list[int]):
        super().__init__(node, f"dur-sub-{index}", protocol)
        self.slow = slow
        self.publishers = publishers
        self.counts: Counter[str] = Counter()
        self.delivered_qos: dict[str, set[int]] = {}
        self.lock = threading.Lock()
        self.client.on_message = self._on_message

    def _on_message(self, client, userdata, msg) -> None:
        if self.slow:
            time.sleep(0.003)
        mid = msg.payload.decode()
        with self.lock:
            self.counts[mid] += 1
            self.delivered_qos.setdefault(mid, set()).add(msg.qos)

    def snapshot(self) -> Counter:
        with self.lock:
            return Counter(self.counts)


class LoadPublisher(LoadClient):
    """Publishes its messages (QoS 1 and 2 alternately) and keeps each one's MQTTMessageInfo: paho marks it
    published when the flow completes, at the PUBACK (QoS 1) or the PUBCOMP (QoS 2)."""

    def __init__(self, node: Node, index: int):
        super().__init__(node, f"dur-pub-{index}", V311)
        self.index = index
        self.topic = f"load/p{index}"
        self.sent: list[tuple[str, int, mqtt.MQTTMessageInfo]] = []
        self.client.max_queued_messages_set(0)  # no limit: everything is queued at once, sent 20 at a time
        # flows completed, counted by the network thread (paho calls on_publish once per message, at the
        # PUBACK or PUBCOMP)
        self.completed = 0
        self.client.on_publish = self._on_publish

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.completed += 1

    def publish_all(self, count: int) -> None:
        for n in range(count):
            qos = 1 if (n + self.index) % 2 == 0 else 2
            payload_id = f"{self.index}:{n}:{qos}"
            info = self.client.publish(self.topic, payload_id.encode(), qos=qos)
            assert info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN), f"{self.client_id}: publish {info.rc}"
            self.sent.append((payload_id, qos, info))

    def acked(self) -> set[str]:
        return {pid for pid, _, info in self.sent if info.is_published()}


def qos_of(payload_id: str) -> int:
    return int(payload_id.rsplit(":", 1)[1])


def run_load_through_restart(nodes, how: str, n_pubs: int, per_pub: int, n_subs: int, kill_fraction: float):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    node = nodes()
    subs: list[LoadSubscriber] = []
    pubs: list[LoadPublisher] = []
    try:
        for i in range(n_subs):
            # each subscriber gets the messages of two publishers; MQTT 3.1.1 and 5 alternate; a third of them
            # are offline during the load, the others connected and slow
            first = i % n_pubs
            second = (first + 1 + (i // n_pubs) * 3) % n_pubs
            if second == first:
                second = (first + 1) % n_pubs
            offline = i % 3 == 0
            s = LoadSubscriber(node, i, V5 if i % 2 else V311, slow=not offline, publishers=[first, second])
            subs.append(s)
            assert s.connect() is False, f"{s.client_id}: session present on a fresh node"
            for p in s.publishers:
                s.subscribe(f"load/p{p}", 2)
            if offline:
                s.disconnect()
        for p in range(n_pubs):
            pub = LoadPublisher(node, p)
            pubs.append(pub)
            assert pub.connect() is False
        total = n_pubs * per_pub
        threshold = max(1, min(total - 1, int(total * kill_fraction) + rng.randrange(-total // 20, total // 20 + 1)))
        acked_count = lambda: sum(p.completed for p in pubs)  # noqa: E731

        for pub in pubs:
            pub.publish_all(per_pub)
        wait_until(lambda: acked_count() >= threshold, DELIVERY_TIMEOUT,
                   f"{threshold} of {total} messages acknowledged before the {how} (seed {seed})", poll=0.002)
        if how == "kill":
            node.kill9()
        else:
            code = node.sigterm()
            assert code == 0, f"SIGTERM: exit code {code}:\n{node.current_logs()[-3000:]}"
        acked_before = set().union(*(p.acked() for p in pubs))
        for c in subs + pubs:
            c._stop.set()
            c._join()

        started = time.monotonic()
        node.start(node.port)
        restart_s = time.monotonic() - started
        for s in subs:
            assert s.connect() is True, f"{s.client_id}: no session present after the {how} (seed {seed})"
        for pub in pubs:
            assert pub.connect() is True, f"{pub.client_id}: no session present after the {how} (seed {seed})"

        # The publishers' sessions go on: paho sends again what the node had not acknowledged, and the rest.
        wait_until(lambda: acked_count() == total, DELIVERY_TIMEOUT,
                   f"every publisher's flows completed after the restart (seed {seed})", poll=0.05)
        acked = set().union(*(p.acked() for p in pubs))
        assert acked_before <= acked and len(acked) == total
        by_pub: dict[int, list[str]] = {p.index: [pid for pid, _, _ in p.sent] for p in pubs}

        def missing(s: LoadSubscriber) -> list[str]:
            got = s.snapshot()
            return [pid for p in s.publishers for pid in by_pub[p] if pid in acked and got[pid] == 0]

        def everyone_has_everything():
            return all(not missing(s) for s in subs)

        try:
            wait_until(everyone_has_everything, DELIVERY_TIMEOUT, "every acknowledged message delivered", poll=0.05)
        except AssertionError:
            short = {s.client_id: (len(missing(s)), missing(s)[:5]) for s in subs if missing(s)}
            raise AssertionError(f"after the {how} at {len(acked_before)}/{total} acknowledged (seed {seed}), "
                                 f"subscribers missing acknowledged messages: {short}") from None

        # late copies: whatever is still coming (QoS 1 resent after the restart) has a moment to arrive
        time.sleep(0.5)
        problems = []
        for s in subs:
            got = s.snapshot()
            expected = {pid for p in s.publishers for pid in by_pub[p]}
            stray = sorted(set(got) - expected)
            if stray:
                problems.append(f"{s.client_id}: messages of publishers it does not subscribe to: {stray[:5]}")
            for pid in sorted(expected):
                n = got[pid]
                if qos_of(pid) == 2 and n > 1:
                    problems.append(f"{s.client_id}: QoS 2 message {pid} delivered {n} times "
                                    f"({'acknowledged' if pid in acked_before else 'not acknowledged'} before the "
                                    f"{how})")
                if pid in acked and n == 0:
                    problems.append(f"{s.client_id}: acknowledged message {pid} never delivered")
                if n and qos_of(pid) == 2 and s.delivered_qos[pid] != {2}:
                    problems.append(f"{s.client_id}: QoS 2 message {pid} delivered at QoS {s.delivered_qos[pid]}")
        assert not problems, (f"after the {how} at {len(acked_before)}/{total} acknowledged (seed {seed}; restart "
                              f"took {restart_s:.2f}s):\n" + "\n".join(problems[:40]))
        assert node.alive()
        return len(acked_before), total
    finally:
        for c in subs + pubs:
            c.close()


@pytest.mark.parametrize("kill_fraction", [0.1, 0.45, 0.8], ids=["early", "middle", "late"])
def test_kill_9_under_load(nodes, kill_fraction):
    """20 publishers x 200 messages (QoS 1 and 2 alternately) into 50 persistent subscribers (3.1.1 with clean
    session 0 and MQTT 5 with clean start 0 and a session expiry; a third offline, the others connected and
    reading slowly), each subscribing to two publishers' topics; kill -9 once about ``kill_fraction`` of the
    messages are acknowledged, start the node again on the same DIR and port, reconnect everyone."""
    run_load_through_restart(nodes, "kill", n_pubs=20, per_pub=200, n_subs=50, kill_fraction=kill_fraction)


def test_sigterm_under_load(nodes):
    """The same with SIGTERM: a clean stop (exit 0) keeps everything too."""
    run_load_through_restart(nodes, "term", n_pubs=5, per_pub=100, n_subs=12, kill_fraction=0.5)


# --------------------------------------------------------------------------------------------------
# retained messages
# --------------------------------------------------------------------------------------------------


def retained_set(made: list, node: Node, client_id: str, topic_filter: str) -> dict[str, bytes]:
    """What a new subscriber gets as retained messages: everything before a marker published after its SUBACK."""
    sub = paho(made, node, client_id)
    sub.connect_ok()
    assert sub.subscribe(topic_filter, 1) == [1]
    marker = paho(made, node, f"{client_id}-marker")
    marker.connect_ok()
    marker.publish("ret/~marker", b"end", qos=1)
    got: dict[str, bytes] = {}
    while True:
        m = sub.get(TIMEOUT)
        if m.topic == "ret/~marker":
            assert not m.retain
            break
        assert m.retain, f"a message that is not retained before the marker: {m.topic} {m.payload!r}"
        assert m.topic not in got, f"retained {m.topic} delivered twice"
        got[m.topic] = m.payload
    sub.disconnect()
    marker.disconnect()
    return got


@pytest.mark.parametrize("how", ["term", "kill"])
def test_retained_messages_survive_a_restart(nodes, paho_made, how):
    node = nodes()
    pub = paho(paho_made, node, "ret-pub")
    pub.connect_ok()
    for topic, payload in [("ret/a", b"alpha"), ("ret/b", b"bravo"), ("ret/c", b"charlie-1"), ("ret/d/e", b"delta"),
                           ("ret/c", b"charlie-2"), ("ret/big", bytes(range(256)) * 40)]:
        pub.publish(topic, payload, qos=1, retain=True)
    pub.publish("ret/b", b"", qos=1, retain=True)  # clears ret/b
    pub.publish("ret/gone", b"not retained", qos=1)
    pub.disconnect()
    expected = {"ret/a": b"alpha", "ret/c": b"charlie-2", "ret/d/e": b"delta", "ret/big": bytes(range(256)) * 40}
    assert retained_set(paho_made, node, "ret-check-0", "ret/#") == expected

    node.restart_after(how)
    assert retained_set(paho_made, node, "ret-check-1", "ret/#") == expected
    # and once more, from the store the restarted node wrote
    node.restart_after(how)
    assert retained_set(paho_made, node, "ret-check-2", "ret/#") == expected


# --------------------------------------------------------------------------------------------------
# offline queue and messages in flight, with DUP and the same packet ids (raw MQTT 3.1.1)
# --------------------------------------------------------------------------------------------------

PUBACK, PUBREC, PUBREL, PUBCOMP = 0x40, 0x50, 0x62, 0x70


def parse_publish(first: int, body: bytes) -> dict:
    qos = (first >> 1) & 3
    (tlen,) = struct.unpack("!H", body[:2])
    topic = body[2:2 + tlen].decode()
    at = 2 + tlen
    pid = None
    if qos:
        (pid,) = struct.unpack("!H", body[at:at + 2])
        at += 2
    return {"topic": topic, "payload": body[at:], "qos": qos, "dup": bool(first & 0x08), "retain": bool(first & 1),
            "pid": pid}


def read_raw(raw: RawClient, timeout: float = TIMEOUT) -> tuple[int, bytes]:
    p = raw.read_packet(timeout)
    assert p is not None, "the node closed the raw client's connection"
    return p


def raw_connect(node: Node, client_id: str, clean: bool) -> tuple[RawClient, bool]:
    raw = RawClient(*node.addr)
    raw.send(connect_packet(client_id, level=4, clean=clean))
    first, body = read_raw(raw)
    assert first == 0x20 and body[1] == 0, f"CONNACK {first:#x} {body!r}"
    return raw, bool(body[0] & 1)


def ack(pid: int, kind: int) -> bytes:
    return packet(kind, struct.pack("!H", pid))


def test_offline_queue_and_inflight_come_back_with_dup_and_the_same_ids(nodes, paho_made):
    node = nodes()
    raw, present = raw_connect(node, "dup-sub", clean=False)
    assert not present
    raw.send(subscribe_packet(1, [("dup/#", 2)]))
    first, body = read_raw(raw)
    assert first == 0x90 and body == b"\x00\x01\x02", (first, body)

    pub = paho(paho_made, node, "dup-pub")
    pub.connect_ok()
    inflight = [("dup/a", b"q1-first", 1), ("dup/a", b"q1-second", 1), ("dup/b", b"q2-unacked", 2),
                ("dup/b", b"q2-received", 2), ("dup/c", b"q1-third", 1)]
    for topic, payload, qos in inflight:
        pub.publish(topic, payload, qos=qos)  # returns at the PUBACK / PUBCOMP: committed
    sent = []
    for _ in inflight:
        first, body = read_raw(raw)
        assert first >> 4 == 3, f"expected a PUBLISH, got {first:#x}"
        sent.append(parse_publish(first, body))
    assert [(m["topic"], m["payload"], m["qos"]) for m in sent] == inflight
    assert not any(m["dup"] for m in sent)
    ids = {m["payload"]: m["pid"] for m in sent}
    # Nothing is acknowledged, except "q2-received": PUBREC, then the node's PUBREL, which is not completed.
    raw.send(ack(ids[b"q2-received"], PUBREC))
    first, body = read_raw(raw)
    assert (first, body) == (PUBREL, struct.pack("!H", ids[b"q2-received"])), (first, body)
    raw.close()  # gone without DISCONNECT, nothing acknowledged
    # the messages below must be queued for an offline session, not sent to the closing connection
    wait_until(lambda: session_connected(node, "dup-sub") is False, TIMEOUT, "the node seeing dup-sub offline")

    # queued while the client is offline
    offline = [("dup/d", b"offline-q1", 1), ("dup/d", b"offline-q2", 2)]
    for topic, payload, qos in offline:
        pub.publish(topic, payload, qos=qos)
    pub.disconnect()
    commit_barrier(node, paho_made)  # the PUBREC and the packet ids sent are committed too

    node.restart_after("kill")
    raw, present = raw_connect(node, "dup-sub", clean=False)
    assert present, "session present must be 1 after the kill -9"
    again, pubrels = [], []
    while len(again) < len(inflight) - 1 + len(offline) or not pubrels:
        try:
            first, body = read_raw(raw)
        except AssertionError as e:
            raise AssertionError(f"after the restart, got PUBLISHes {[(m['payload'], m['dup'], m['pid']) for m in again]}"
                                 f" and PUBRELs {pubrels}, then nothing more: {e}") from None
        if first == PUBREL:
            pubrels.append(struct.unpack("!H", body)[0])
        else:
            assert first >> 4 == 3, f"unexpected packet {first:#x} {body!r}"
            again.append(parse_publish(first, body))
    resent = [m for m in again if m["payload"] in ids]
    fresh = [m for m in again if m["payload"] not in ids]
    # the unacknowledged ones in their order, with DUP and their packet ids; "q2-received" only as a PUBREL
    assert [(m["topic"], m["payload"], m["qos"]) for m in resent] == [t for t in inflight if t[1] != b"q2-received"]
    for m in resent:
        assert m["dup"], f"{m['payload']!r} sent again without DUP"
        assert m["pid"] == ids[m["payload"]], f"{m['payload']!r} sent again with packet id {m['pid']}, " \
                                              f"was {ids[m['payload']]}"
    assert pubrels == [ids[b"q2-received"]], f"PUBRELs after the restart: {pubrels}, expected {ids[b'q2-received']}"
    assert [(m["topic"], m["payload"], m["qos"]) for m in fresh] == offline
    assert not any(m["dup"] for m in fresh), "messages queued offline were never sent before: no DUP"

    # Acknowledge everything now; QoS 2 goes through PUBREC/PUBREL/PUBCOMP.
    for m in again:
        raw.send(ack(m["pid"], PUBACK if m["qos"] == 1 else PUBREC))
    raw.send(ack(ids[b"q2-received"], PUBCOMP))
    qos2 = {m["pid"] for m in again if m["qos"] == 2}
    while qos2:
        first, body = read_raw(raw)
        assert first == PUBREL, f"expected PUBREL, got {first:#x} {body!r}"
        pid = struct.unpack("!H", body)[0]
        assert pid in qos2
        qos2.discard(pid)
        raw.send(ack(pid, PUBCOMP))
    raw.send(packet(0xE0, b""))
    raw.close()

    # Once acknowledged and the node stopped cleanly, nothing comes again.
    node.restart_after("term")
    raw, present = raw_connect(node, "dup-sub", clean=False)
    assert present
    try:
        p = raw.read_packet(1.0)
    except AssertionError:
        p = None  # nothing within the second
    assert p is None, f"after everything was acknowledged the node sent {p!r}"
    raw.close()


# --------------------------------------------------------------------------------------------------
# one data dir, one node
# --------------------------------------------------------------------------------------------------


def test_a_second_node_on_the_same_data_dir_exits(nodes, paho_made, tmp_path):
    a = nodes()
    port_b = _free_port()
    stderr_path = tmp_path / "node-b.stderr"
    cmd = [str(broker_binary()), "start", "--listen", f"127.0.0.1:{port_b}", "--api-listen", "127.0.0.1:0",
           "--sys-interval", "0", "--data-dir", str(a.data_dir)]
    outcome, code = run_to_exit_or_listen(cmd, stderr_path, port_b, timeout=10)
    if outcome == "listening":
        code.kill()
        code.wait(10)
        raise AssertionError(f"a second node served on {a.data_dir} while the first one runs")
    stderr = stderr_path.read_text(errors="replace")
    assert code != 0, f"the second node exited with 0:\n{stderr}"
    assert "panicked" not in stderr, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert str(a.data_dir) in lines[0], f"the line does not name the data dir {a.data_dir}: {lines[0]!r}"

    # the first node goes on serving
    assert a.alive()
    sub = paho(paho_made, a, "a-sub")
    sub.connect_ok()
    assert sub.subscribe("still/here", 1) == [1]
    pub = paho(paho_made, a, "a-pub")
    pub.connect_ok()
    pub.publish("still/here", b"yes", qos=1)
    sub.expect("still/here", b"yes", qos=1)


# --------------------------------------------------------------------------------------------------
# a damaged store
# --------------------------------------------------------------------------------------------------


def damage(files: list[Path], how: str) -> None:
    for f in files:
        size = f.stat().st_size
        if how == "truncate":
            with open(f, "r+b") as fh:
                fh.truncate(size // 2)
        else:
            rng = random.Random(size)
            chunk = max(1, min(size // 4, 64 * 1024))
            with open(f, "r+b") as fh:
                fh.seek(size // 2 - chunk // 2)
                fh.write(bytes(rng.randrange(256) for _ in range(chunk)))


@pytest.mark.parametrize("how", ["truncate", "garbage"])
def test_a_damaged_store_is_refused_in_one_line_never_a_panic(nodes, paho_made, tmp_path, how):
    node = nodes()
    pub = paho(paho_made, node, "dmg-pub")
    pub.connect_ok()
    for i in range(50):
        pub.publish(f"dmg/{i}", f"retained {i}".encode() * 20, qos=1, retain=True)
    pub.disconnect()
    sess = paho(paho_made, node, "dmg-sess", clean_session=False)
    sess.connect_ok()
    assert sess.subscribe("dmg/#", 1) == [1]
    sess.disconnect()
    code = node.sigterm()
    assert code == 0
    files = store_files(node.data_dir)
    assert files, f"no store file in {node.data_dir} after a stop: {list(node.data_dir.rglob('*'))}"
    damage(files, how)

    port = _free_port()
    stderr_path = tmp_path / "damaged.stderr"
    outcome, result = run_to_exit_or_listen(node.command(port), stderr_path, port, timeout=RESTART_TIMEOUT)
    if outcome == "exited":
        stderr = stderr_path.read_text(errors="replace")
        assert result != 0, f"the node exited 0 on a damaged store:\n{stderr}"
        assert "panicked" not in stderr, f"a panic instead of an error:\n{stderr}"
        lines = error_lines(stderr)
        assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
        return
    # The engine found nothing wrong: then the node must serve what it has, without a panic.
    proc = result
    try:
        probe = PahoClient("127.0.0.1", port, client_id="dmg-sess", clean_session=False, name="dmg-probe")
        paho_made.append(probe)
        probe.connect()  # whatever it answers about a damaged session, it answers
        fresh = PahoClient("127.0.0.1", port, client_id="dmg-fresh", name="dmg-fresh")
        paho_made.append(fresh)
        fresh.connect_ok()
        fresh.subscribe("dmg/#", 1)
        fresh.publish("dmg/after", b"x", qos=1)
        fresh.wait_for(lambda m: m.topic == "dmg/after", what="its own message after the damaged start")
        assert proc.poll() is None, "the node died serving a damaged store"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    stderr = stderr_path.read_text(errors="replace")
    assert "panicked" not in stderr, f"a panic serving a damaged store:\n{stderr}"


# --------------------------------------------------------------------------------------------------
# --durability memory
# --------------------------------------------------------------------------------------------------


def test_durability_memory_restores_nothing(nodes, paho_made):
    node = nodes("--durability", "memory")
    v3 = paho(paho_made, node, "mem-v3", clean_session=False)
    v3.connect_ok()
    assert v3.subscribe("mem/t", 1) == [1]
    v3.disconnect()
    v5 = paho(paho_made, node, "mem-v5", protocol=V5)
    v5.connect_ok(clean_start=False, properties=session_props())
    assert v5.subscribe("mem/t", 1) == [1]
    v5.disconnect()
    pub = paho(paho_made, node, "mem-pub")
    pub.connect_ok()
    pub.publish("mem/t", b"queued", qos=1)
    pub.publish("mem/r", b"retained", qos=1, retain=True)
    pub.disconnect()
    # the sessions are there while the node runs
    again = paho(paho_made, node, "mem-v3", clean_session=False)
    assert again.connect_ok().session_present is True
    again.expect("mem/t", b"queued", qos=1)
    again.disconnect()

    node.restart_after("term")
    v3 = paho(paho_made, node, "mem-v3", clean_session=False)
    assert v3.connect_ok().session_present is False, "--durability memory restored a 3.1.1 session"
    v5 = paho(paho_made, node, "mem-v5", protocol=V5)
    assert v5.connect_ok(clean_start=False, properties=session_props()).session_present is False, \
        "--durability memory restored an MQTT 5 session"

    node.restart_after("kill")
    v5 = paho(paho_made, node, "mem-v5", protocol=V5)
    assert v5.connect_ok(clean_start=False, properties=session_props()).session_present is False


# --------------------------------------------------------------------------------------------------
# operator state
# --------------------------------------------------------------------------------------------------


def test_users_and_bans_added_at_run_time_survive_kill_9(nodes, paho_made):
    node = nodes("--allow-anonymous", "false")
    added = ctl(node, "users", "add", "dora", "d-pass")
    assert added.returncode == 0 and added.stdout.strip() == "added user dora", added
    banned = ctl(node, "banned", "add", "clientid", "rogue-1")
    assert banned.returncode == 0 and banned.stdout.strip() == "banned clientid rogue-1", banned
    banned = ctl(node, "banned", "add", "username", "mallory")
    assert banned.returncode == 0, banned
    ok = paho(paho_made, node, "dora-1")
    ok.paho.username_pw_set("dora", "d-pass")
    ok.connect_ok()
    ok.disconnect()

    node.restart_after("kill")
    users = ctl(node, "users", "list")
    assert users.returncode == 0 and "dora" in users.stdout, users
    bans = ctl(node, "banned", "list")
    assert bans.returncode == 0 and "rogue-1" in bans.stdout and "mallory" in bans.stdout, bans

    ok = paho(paho_made, node, "dora-2")
    ok.paho.username_pw_set("dora", "d-pass")
    ok.connect_ok()
    ok.disconnect()
    wrong = paho(paho_made, node, "dora-3")
    wrong.paho.username_pw_set("dora", "wrong")
    assert wrong.connect().reason_code == 0x86  # 3.1.1 return code 4, bad user name or password
    anonymous = paho(paho_made, node, "anon")
    assert anonymous.connect().reason_code == 0x87  # 3.1.1 return code 5, not authorized
    rogue = paho(paho_made, node, "rogue-1", protocol=V5)
    rogue.paho.username_pw_set("dora", "d-pass")
    assert rogue.connect().reason_code == 0x8A  # Banned

    # a user deleted at run time stays deleted
    deleted = ctl(node, "users", "delete", "dora")
    assert deleted.returncode == 0, deleted
    lifted = ctl(node, "banned", "delete", "clientid", "rogue-1")
    assert lifted.returncode == 0, lifted
    node.restart_after("kill")
    gone = paho(paho_made, node, "dora-4")
    gone.paho.username_pw_set("dora", "d-pass")
    assert gone.connect().reason_code == 0x86
    bans = ctl(node, "banned", "list")
    assert "rogue-1" not in bans.stdout and "mallory" in bans.stdout, bans
