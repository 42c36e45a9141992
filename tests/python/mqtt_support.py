"""Helpers shared by the interoperability tests.

Everything that waits does so with a deadline, so a broker that misbehaves makes a test fail with a
message instead of hanging the suite:

* ``PahoClient`` wraps a paho-mqtt 2.x client driven by our own network thread (``loop()`` in a
  thread, never paho's auto-reconnecting ``loop_start``), with queues for received messages,
  SUBACK/UNSUBACK reason codes and the disconnect reason.
* ``RawClient`` speaks MQTT bytes on a plain socket, for the packets paho refuses to send (wildcard
  PUBLISH topics, empty client ids without a clean session) and for exact CONNACK bytes.
* ``MosquittoSub`` runs ``mosquitto_sub -d -v`` under ``stdbuf -oL`` and parses its output.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from paho.mqtt.reasoncodes import ReasonCode

# Default deadline, in seconds, for anything expected to happen "now" (CONNACK, SUBACK, a delivery).
TIMEOUT = float(os.environ.get("RACTMQ_TEST_TIMEOUT", "5"))


def deadline_after(seconds: float) -> float:
    return time.monotonic() + seconds


# --------------------------------------------------------------------------------------------------
# paho-mqtt
# --------------------------------------------------------------------------------------------------


@dataclass
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Any = None
    at: float = 0.0  # time.monotonic() on arrival


@dataclass
class Connack:
    reason_code: int
    session_present: bool
    properties: Any = None


@dataclass
class Disconnected:
    reason_code: int
    from_server: bool  # True when the broker sent a DISCONNECT packet (v5)
    properties: Any = None
    at: float = 0.0


@dataclass
class PahoClient:
    """A paho-mqtt client with blocking, deadline-bounded helpers."""

    host: str
    port: int
    client_id: str = ""
    protocol: int = mqtt.MQTTv311
    clean_session: bool | None = None  # MQTT 3.x only
    name: str = ""
    transport: str = "tcp"  # or "websockets"
    ws_path: str = "/mqtt"
    tls: dict[str, str] | None = None  # keyword arguments of paho's tls_set (ca_certs, certfile, keyfile)
    _client: mqtt.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.protocol != mqtt.MQTTv5 and self.clean_session is not None:
            kwargs["clean_session"] = self.clean_session
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=self.protocol,
            reconnect_on_failure=False,
            transport=self.transport,
            **kwargs,
        )
        if self.transport == "websockets":
            self._client.ws_set_options(path=self.ws_path)
        if self.tls is not None:
            self._client.tls_set(**self.tls)
        self.messages: queue.Queue[Received] = queue.Queue()
        self._connack: queue.Queue[Connack] = queue.Queue()
        self._subacks: dict[int, list[int]] = {}
        self._unsubacks: dict[int, list[int]] = {}
        self._acks = threading.Condition()
        self.disconnected = threading.Event()
        self.disconnect_info: Disconnected | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dropped = False

        c = self._client
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_disconnect = self._on_disconnect

        # Workaround for paho-mqtt issue #860: paho 2.1 only decodes a v5 DISCONNECT reason code when
        # the Remaining Length is > 2, so a spec-valid `E0 01 8E` or `E0 02 8E 00` reaches
        # on_disconnect as "Success". Keep the raw DISCONNECT body and decode the reason ourselves.
        self._server_disconnect_body: bytes | None = None
        original_handle_disconnect = c._handle_disconnect

        def handle_disconnect() -> Any:
            self._server_disconnect_body = bytes(c._in_packet["packet"])
            return original_handle_disconnect()

        c._handle_disconnect = handle_disconnect

    # -- callbacks (network thread) ----------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connack.put(Connack(_rc(reason_code), bool(flags.session_present), properties))

    def _on_message(self, client, userdata, msg) -> None:
        self.messages.put(
            Received(
                msg.topic,
                bytes(msg.payload),
                msg.qos,
                bool(msg.retain),
                getattr(msg, "properties", None),
                time.monotonic(),
            )
        )

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._acks:
            self._subacks[mid] = [_rc(r) for r in reason_codes]
            self._acks.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._acks:
            self._unsubacks[mid] = [_rc(r) for r in reason_codes]
            self._acks.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        from_server = bool(flags.is_disconnect_packet_from_server)
        code = _rc(reason_code)
        body = self._server_disconnect_body
        if from_server and body is not None:
            code = body[0] if body else 0  # MQTT 5 3.14.2.1: absent reason code means 0x00
        if self.disconnect_info is None:
            self.disconnect_info = Disconnected(code, from_server, properties, time.monotonic())
        self.disconnected.set()

    # -- network thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rc = self._client.loop(timeout=0.05)
            except Exception:  # noqa: BLE001 - socket closed under us by drop()
                break
            if rc != mqtt.MQTT_ERR_SUCCESS:
                break
        if not self._dropped:
            self.disconnected.set()

    # -- API ---------------------------------------------------------------------------------------

    @property
    def paho(self) -> mqtt.Client:
        return self._client

    def will_set(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False,
                 properties: Properties | None = None) -> None:
        self._client.will_set(topic, payload, qos=qos, retain=retain, properties=properties)

    def connect(self, clean_start: bool | None = None, properties: Properties | None = None,
                keepalive: int = 30, timeout: float = TIMEOUT) -> Connack:
        """Connect and wait for the CONNACK; returns it whatever its reason code."""
        kwargs: dict[str, Any] = {}
        if self.protocol == mqtt.MQTTv5:
            kwargs["clean_start"] = True if clean_start is None else clean_start
            if properties is not None:
                kwargs["properties"] = properties
        self._client.connect(self.host, self.port, keepalive=keepalive, **kwargs)
        self._thread = threading.Thread(target=self._run, name=f"paho-{self.name or self.client_id}", daemon=True)
        self._thread.start()
        try:
            return self._connack.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self._label()}: no CONNACK within {timeout}s") from None

    def connect_ok(self, **kwargs: Any) -> Connack:
        ack = self.connect(**kwargs)
        assert ack.reason_code == 0, f"{self._label()}: CONNACK refused with reason 0x{ack.reason_code:02x}"
        return ack

    def subscribe(self, topic: str, qos: int = 0, options: Any = None, properties: Properties | None = None,
                  timeout: float = TIMEOUT) -> list[int]:
        """Subscribe and wait for the SUBACK; returns its reason codes (granted QoS for 3.x)."""
        if self.protocol == mqtt.MQTTv5:
            opts = options if options is not None else mqtt.SubscribeOptions(qos=qos)
            rc, mid = self._client.subscribe(topic, options=opts, properties=properties)
        else:
            rc, mid = self._client.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"{self._label()}: subscribe({topic!r}) not sent: {rc}"
        return self._wait_ack(self._subacks, mid, "SUBACK", timeout)

    def unsubscribe(self, topic: str, timeout: float = TIMEOUT) -> list[int]:
        rc, mid = self._client.unsubscribe(topic)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"{self._label()}: unsubscribe({topic!r}) not sent: {rc}"
        return self._wait_ack(self._unsubacks, mid, "UNSUBACK", timeout)

    def _wait_ack(self, table: dict[int, list[int]], mid: int, what: str, timeout: float) -> list[int]:
        end = deadline_after(timeout)
        with self._acks:
            while mid not in table:
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self._label()}: no {what} for mid {mid} within {timeout}s")
                self._acks.wait(left)
            return table.pop(mid)

    def publish(self, topic: str, payload: bytes | str = b"", qos: int = 0, retain: bool = False,
                properties: Properties | None = None, timeout: float = TIMEOUT) -> None:
        """Publish and wait until the QoS flow completes (written for QoS 0, PUBACK, PUBCOMP)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"{self._label()}: publish({topic!r}) not queued: {info.rc}"
        info.wait_for_publish(timeout)
        assert info.is_published(), f"{self._label()}: publish({topic!r}, qos={qos}) not completed within {timeout}s"

    def publish_nowait(self, topic: str, payload: bytes | str = b"", qos: int = 0, retain: bool = False,
                       properties: Properties | None = None) -> None:
        self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def get(self, timeout: float = TIMEOUT) -> Received:
        """Next received message, or an assertion failure after ``timeout`` seconds."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self._label()}: no message within {timeout}s") from None

    def expect(self, topic: str, payload: bytes, qos: int | None = None, retain: bool | None = None,
               timeout: float = TIMEOUT) -> Received:
        """The NEXT message must be exactly this one (anything else before it is a failure)."""
        msg = self.get(timeout)
        assert (msg.topic, msg.payload) == (topic, payload), (
            f"{self._label()}: expected {topic!r} {payload!r}, got {msg.topic!r} {msg.payload!r}"
            f" (qos={msg.qos}, retain={msg.retain})"
        )
        if qos is not None:
            assert msg.qos == qos, f"{self._label()}: {topic!r} delivered at QoS {msg.qos}, expected {qos}"
        if retain is not None:
            assert msg.retain == retain, f"{self._label()}: {topic!r} retain flag {msg.retain}, expected {retain}"
        return msg

    def wait_for(self, predicate, timeout: float = TIMEOUT, what: str = "matching message") -> Received:
        """Consume messages until one satisfies ``predicate``; fail after ``timeout`` seconds overall."""
        end = deadline_after(timeout)
        skipped = []
        while True:
            left = end - time.monotonic()
            try:
                msg = self.messages.get(timeout=max(0.0, left))
            except queue.Empty:
                tail = ", ".join(f"{m.topic}={m.payload!r}" for m in skipped[-8:])
                raise AssertionError(f"{self._label()}: no {what} within {timeout}s (last seen: {tail})") from None
            if predicate(msg):
                return msg
            skipped.append(msg)

    def expect_silence(self, seconds: float) -> None:
        """Nothing may arrive for ``seconds`` (used before a marker to cover a timed window)."""
        try:
            msg = self.messages.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(
            f"{self._label()}: unexpected message {msg.topic!r} {msg.payload!r} (retain={msg.retain})"
        )

    def wait_disconnected(self, timeout: float = TIMEOUT) -> Disconnected:
        assert self.disconnected.wait(timeout), f"{self._label()}: still connected after {timeout}s"
        self._join()
        info = self.disconnect_info
        return info if info is not None else Disconnected(-1, False)

    def disconnect(self, reasoncode: ReasonCode | None = None, properties: Properties | None = None,
                   timeout: float = TIMEOUT) -> None:
        """Normal disconnect: sends DISCONNECT and waits until the connection is closed."""
        self._client.disconnect(reasoncode=reasoncode, properties=properties)
        assert self.disconnected.wait(timeout), f"{self._label()}: DISCONNECT not completed within {timeout}s"
        self._join()

    def drop(self) -> None:
        """Abnormal close: stop the network thread and close the TCP socket without a DISCONNECT."""
        self._dropped = True
        self._stop.set()
        self._join()
        sock = self._client.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _join(self) -> None:
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(TIMEOUT)

    def close(self) -> None:
        """Teardown: disconnect politely if still connected, then stop the thread."""
        if self._thread is not None and not self.disconnected.is_set() and not self._dropped:
            try:
                self._client.disconnect()
                self.disconnected.wait(2)
            except Exception:  # noqa: BLE001
                pass
        self._stop.set()
        self._join()
        try:
            sock = self._client.socket()
            if sock is not None:
                sock.close()
        except Exception:  # noqa: BLE001
            pass

    def _label(self) -> str:
        return f"client {self.name or self.client_id or '<empty id>'}"


def _rc(code: Any) -> int:
    if isinstance(code, ReasonCode):
        return code.value
    return int(code)


def props(packet_type: int, **values: Any) -> Properties:
    """``props(PacketTypes.CONNECT, SessionExpiryInterval=60)``"""
    p = Properties(packet_type)
    for k, v in values.items():
        setattr(p, k, v)
    return p


def reason(packet_type: int, code: int) -> ReasonCode:
    return ReasonCode(packet_type, identifier=code)


# --------------------------------------------------------------------------------------------------
# Raw MQTT on a socket
# --------------------------------------------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def mqtt_str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + varint(len(body)) + body


def connect_packet(client_id: str = "", level: int = 4, clean: bool = True, keepalive: int = 30,
                   v5_properties: bytes = b"", will: tuple[str, bytes, int] | None = None) -> bytes:
    """CONNECT for MQTT 3.1 (level 3, "MQIsdp"), 3.1.1 (4), 5.0 (5) or any other level.

    ``will`` is (topic, payload, qos)."""
    name = "MQIsdp" if level == 3 else "MQTT"
    flags = 0x02 if clean else 0x00
    if will is not None:
        flags |= 0x04 | (will[2] << 3)
    body = mqtt_str(name) + bytes([level, flags]) + struct.pack("!H", keepalive)
    if level == 5:
        body += varint(len(v5_properties)) + v5_properties
    body += mqtt_str(client_id)
    if will is not None:
        if level == 5:
            body += varint(0)
        body += mqtt_str(will[0]) + mqtt_str(will[1])
    return packet(0x10, body)


def publish_packet(topic: str, payload: bytes, qos: int = 0, packet_id: int = 1, v5: bool = False,
                   retain: bool = False) -> bytes:
    body = mqtt_str(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if v5:
        body += varint(0)
    body += payload
    return packet(0x30 | (qos << 1) | (1 if retain else 0), body)


def subscribe_packet(packet_id: int, filters: list[tuple[str, int]], v5: bool = False) -> bytes:
    """SUBSCRIBE with (filter, options byte) pairs; paho validates filters, this does not."""
    body = struct.pack("!H", packet_id)
    if v5:
        body += varint(0)
    for topic_filter, options in filters:
        body += mqtt_str(topic_filter) + bytes([options])
    return packet(0x82, body)


def suback_codes(body: bytes, v5: bool = False) -> tuple[int, list[int]]:
    """(packet id, reason codes) of a SUBACK body."""
    packet_id = struct.unpack("!H", body[:2])[0]
    i = 2
    if v5:
        length, mult = 0, 1
        while True:
            b = body[i]
            i += 1
            length += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                break
        i += length
    return packet_id, list(body[i:])


class RawClient:
    def __init__(self, host: str, port: int, timeout: float = TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self._buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, n: int, end: float) -> bool:
        while len(self._buf) < n:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"raw client: no complete packet within {self.timeout}s (have {self._buf!r})")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return False
            self._buf += chunk
        return True

    def read_packet(self, timeout: float | None = None) -> tuple[int, bytes] | None:
        """(first byte, body) of the next packet, or None if the broker closed the connection."""
        end = deadline_after(timeout if timeout is not None else self.timeout)
        if not self._fill(2, end):
            assert not self._buf, f"raw client: connection closed mid-packet ({self._buf!r})"
            return None
        length, mult, i = 0, 1, 1
        while True:
            if not self._fill(i + 1, end):
                raise AssertionError("raw client: connection closed inside a length field")
            b = self._buf[i]
            length += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
        if not self._fill(i + length, end):
            raise AssertionError("raw client: connection closed inside a packet")
        first, body = self._buf[0], self._buf[i:i + length]
        self._buf = self._buf[i + length:]
        return first, body

    def read_until_closed(self, timeout: float | None = None) -> list[tuple[int, bytes]]:
        """All packets until the broker closes the connection (failure if it doesn't in time)."""
        end = deadline_after(timeout if timeout is not None else self.timeout)
        out = []
        while True:
            p = self.read_packet(max(0.0, end - time.monotonic()))
            if p is None:
                return out
            out.append(p)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def reconnect_race(broker, level: int, iterations: int = 100) -> None:
    """Connect with a clean session, subscribe, DISCONNECT, and at once reconnect the same client id
    without a clean session: every reconnect must get CONNACK 0 with session present 0."""
    v5 = level == 5
    for i in range(iterations):
        a = RawClient(*broker.addr)
        b = None
        try:
            a.send(connect_packet("racer", level=level, clean=True))
            p = a.read_packet()
            assert p is not None and p[0] == 0x20 and p[1][1] == 0, f"iteration {i}: first CONNECT answered {p!r}"
            a.send(subscribe_packet(1, [("race/t", 1)], v5=v5))
            p = a.read_packet()
            assert p is not None and p[0] == 0x90, f"iteration {i}: SUBSCRIBE answered {p!r}"
            a.send(packet(0xE0, b""))
            b = RawClient(*broker.addr, timeout=3)
            b.send(connect_packet("racer", level=level, clean=False))
            p = b.read_packet()
            assert p is not None, f"iteration {i}: reconnect closed by the broker without a CONNACK"
            assert p[0] == 0x20, f"iteration {i}: reconnect answered {p!r}"
            session_present, code = p[1][0] & 1, p[1][1]
            assert code == 0, f"iteration {i}: CONNACK code {code:#x}"
            assert session_present == 0, f"iteration {i}: session present after a clean session ended"
            b.send(packet(0xE0, b""))
        finally:
            a.close()
            if b is not None:
                b.close()


# --------------------------------------------------------------------------------------------------
# mosquitto_sub / mosquitto_pub
# --------------------------------------------------------------------------------------------------

_PUBLISH_DEBUG = re.compile(r"received PUBLISH \(d(\d), q(\d), r(\d), m(\d+), '(.*)', \.\.\. \((\d+) bytes\)\)")


@dataclass
class SubMessage:
    topic: str
    payload: str
    qos: int
    retain: bool


class MosquittoSub:
    """``mosquitto_sub -d -v`` with line-buffered stdout read by a thread.

    ``-d`` makes it print its packet log, which tells us when the SUBACK arrived (so the test can
    publish without racing the subscription) and the QoS/retain flags of each PUBLISH it received.
    """

    def __init__(self, host: str, port: int, args: list[str]):
        cmd = ["mosquitto_sub", "-h", host, "-p", str(port), "-d", "-v", *args]
        if shutil.which("stdbuf"):
            cmd = ["stdbuf", "-oL", *cmd]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     errors="replace")
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.transcript: list[str] = []
        self.stderr_text = ""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        self._pending: list[tuple[str, int, int, bool]] = []
        self.received: list[SubMessage] = []
        self._eof = False

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr_text = self.proc.stderr.read()

    def _next_line(self, end: float, what: str) -> str | None:
        try:
            line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"mosquitto_sub: {what} not seen in time; output so far:\n{self.describe()}") from None
        if line is None:
            self._eof = True
            return None
        self.transcript.append(line)
        self._parse(line)
        return line

    def _parse(self, line: str) -> None:
        m = _PUBLISH_DEBUG.search(line)
        if m:
            # (topic, payload bytes, qos, retain). For QoS 2, libmosquitto prints the message only
            # on PUBREL, so several PUBLISH lines may come before their message lines.
            self._pending.append((m.group(5), int(m.group(6)), int(m.group(2)), m.group(3) == "1"))
            return
        if line.startswith("Client ") or line.startswith("Subscribed (mid"):
            return
        topic, _, payload = line.partition(" ")
        qos, retain = -1, False
        size = len(payload.encode())
        for exact in (True, False):
            match = next((p for p in self._pending if p[0] == topic and (p[1] == size or not exact)), None)
            if match is not None:
                self._pending.remove(match)
                qos, retain = match[2], match[3]
                break
        self.received.append(SubMessage(topic, payload, qos, retain))

    def wait_for_line(self, needle: str, timeout: float = TIMEOUT) -> None:
        end = deadline_after(timeout)
        while True:
            line = self._next_line(end, repr(needle))
            if line is None:
                raise AssertionError(f"mosquitto_sub exited before {needle!r}:\n{self.describe()}")
            if needle in line:
                return

    def wait_subscribed(self, timeout: float = TIMEOUT) -> None:
        self.wait_for_line("received SUBACK", timeout)

    def finish(self, timeout: float = TIMEOUT) -> list[SubMessage]:
        """Wait for the process to exit on its own (-C N), return everything it received."""
        end = deadline_after(timeout)
        while not self._eof:
            self._next_line(end, "exit")
        try:
            rc = self.proc.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"mosquitto_sub did not exit:\n{self.describe()}") from None
        assert rc == 0, f"mosquitto_sub exited with {rc}:\n{self.describe()}"
        return self.received

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)

    def describe(self) -> str:
        return "$ " + " ".join(self.cmd) + "\n" + "\n".join(self.transcript) + "\n[stderr]\n" + self.stderr_text


def mosquitto_pub(host: str, port: int, args: list[str], timeout: float = TIMEOUT) -> None:
    cmd = ["mosquitto_pub", "-h", host, "-p", str(port), *args]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{' '.join(cmd)} did not finish within {timeout}s: {e.stderr!r}") from None
    assert res.returncode == 0, f"{' '.join(cmd)} exited {res.returncode}: {res.stdout}{res.stderr}"


__all__ = [
    "TIMEOUT", "PahoClient", "Received", "Connack", "Disconnected", "props", "reason", "PacketTypes",
    "RawClient", "connect_packet", "publish_packet", "subscribe_packet", "suback_codes", "reconnect_race", "packet", "varint", "mqtt_str",
    "MosquittoSub", "SubMessage", "mosquitto_pub", "mqtt", "scrape", "sample",
]


# Prometheus

def scrape(broker) -> dict:
    """The node's /metrics, parsed by Prometheus's own parser, by family name."""
    with urllib.request.urlopen(f"http://{broker.api_addr()}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(families: dict, name: str, **labels) -> float:
    """The value of the sample `name` with these labels."""
    for family in families.values():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise AssertionError(f"no sample {name} {labels} in {sorted(families)}")
