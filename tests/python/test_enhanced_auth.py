"""MQTT 5 enhanced authentication with SCRAM-SHA-256, against a client written here from RFC 5802 with the
standard library only (independent of the broker's implementation): the AUTH exchange at CONNECT, the server
proving itself in CONNACK, re-authentication on a live connection, and every failure path."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct

import pytest

from mqtt_support import RawClient, connect_packet, mqtt_str, packet, publish_packet, varint

METHOD = "SCRAM-SHA-256"
AUTH = 0xF0
CONTINUE, REAUTHENTICATE = 0x18, 0x19
NOT_AUTHORIZED, PROTOCOL_ERROR, BAD_AUTH_METHOD = 0x87, 0x82, 0x8C


def auth_properties(data: bytes | None, method: str = METHOD) -> bytes:
    props = bytes([0x15]) + mqtt_str(method)
    if data is not None:
        props += bytes([0x16]) + struct.pack("!H", len(data)) + data
    return props


def auth_packet(reason: int, data: bytes | None, method: str = METHOD) -> bytes:
    props = auth_properties(data, method)
    return packet(AUTH, bytes([reason]) + varint(len(props)) + props)


def properties(body: bytes, start: int) -> dict[int, bytes]:
    """Properties of a packet body from `start` (at the property length): id -> raw value (strings and
    binary data without their length prefix; this test needs only those and one-byte values)."""
    length, shift, i = 0, 0, start
    while True:
        b = body[i]
        length |= (b & 0x7F) << shift
        shift += 7
        i += 1
        if not b & 0x80:
            break
    out, end = {}, i + length
    while i < end:
        pid = body[i]
        i += 1
        if pid in (0x15, 0x16, 0x1F, 0x1A, 0x1C, 0x12):  # strings and binary data
            n = struct.unpack("!H", body[i:i + 2])[0]
            out[pid] = body[i + 2:i + 2 + n]
            i += 2 + n
        elif pid in (0x13, 0x21, 0x22):  # two-byte integers
            out[pid] = body[i:i + 2]
            i += 2
        elif pid in (0x11, 0x27):  # four-byte integers
            out[pid] = body[i:i + 4]
            i += 4
        else:  # one-byte values
            out[pid] = body[i:i + 1]
            i += 1
    return out


class ScramClient:
    """The client side of SCRAM-SHA-256 (RFC 5802 §3)."""

    def __init__(self, user: str, password: str):
        self.user, self.password = user, password
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n={user},r={self.nonce}"

    def first(self) -> bytes:
        return f"n,,{self.first_bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        text = server_first.decode()
        attrs = dict(a.split("=", 1) for a in text.split(","))
        assert attrs["r"].startswith(self.nonce), "the server nonce must extend ours"
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{self.first_bare},{text},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.expected_server_final = b"v=" + base64.b64encode(hmac.new(server_key, auth_message, hashlib.sha256).digest())
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


@pytest.fixture
def scram_broker(broker_factory):
    return broker_factory("--user", "alice:wonderland", "--allow-anonymous", "false")


def scram_connect(b, user: str, password: str, client_id: str) -> tuple[RawClient, ScramClient, int, dict]:
    """CONNECT with SCRAM; returns the socket, the SCRAM state, the CONNACK reason code and its properties."""
    raw = RawClient(*b.addr)
    scram = ScramClient(user, password)
    raw.send(connect_packet(client_id, level=5, v5_properties=auth_properties(scram.first())))
    first, body = raw.read_packet()
    assert first == AUTH, f"expected AUTH with server-first, got {first:#x}"
    assert body[0] == CONTINUE
    props = properties(body, 1)
    assert props[0x15] == METHOD.encode()
    raw.send(auth_packet(CONTINUE, scram.final(props[0x16])))
    first, body = raw.read_packet()
    assert first == 0x20, f"expected CONNACK, got {first:#x}"
    return raw, scram, body[1], properties(body, 2)


def test_scram_connect_succeeds_and_the_broker_proves_it_knows_the_password(scram_broker):
    raw, scram, code, props = scram_connect(scram_broker, "alice", "wonderland", "scram-ok")
    try:
        assert code == 0
        assert props[0x15] == METHOD.encode(), "CONNACK names the method"
        assert props[0x16] == scram.expected_server_final, "server-final verifies: the broker knows the key"
        # The connection works.
        raw.send(packet(0x82, struct.pack("!H", 1) + varint(0) + mqtt_str("scram/t") + bytes([1])))
        assert raw.read_packet()[0] == 0x90
        raw.send(publish_packet("scram/t", b"hi", qos=1, packet_id=2, v5=True))
        kinds = {raw.read_packet()[0] & 0xF0 for _ in range(2)}
        assert kinds == {0x30, 0x40}, "the message comes back and is acknowledged"
    finally:
        raw.close()


@pytest.mark.parametrize("user,password", [("alice", "looking-glass"), ("mallory", "wonderland")])
def test_scram_with_a_wrong_password_or_unknown_user_gets_0x87(scram_broker, user, password):
    raw, _, code, _ = scram_connect(scram_broker, user, password, "scram-bad")
    try:
        assert code == NOT_AUTHORIZED
        assert raw.read_until_closed() == []
    finally:
        raw.close()


def test_an_unknown_method_gets_0x8c(scram_broker):
    raw = RawClient(*scram_broker.addr)
    try:
        raw.send(connect_packet("kerberos", level=5, v5_properties=auth_properties(b"x", method="GSSAPI")))
        first, body = raw.read_packet()
        assert (first, body[1]) == (0x20, BAD_AUTH_METHOD)
    finally:
        raw.close()


def reauthenticate(raw: RawClient, password: str) -> ScramClient:
    """AUTH 0x19 with a new client-first, then the client-final for the broker's server-first."""
    scram = ScramClient("alice", password)
    raw.send(auth_packet(REAUTHENTICATE, scram.first()))
    first, body = raw.read_packet()
    assert (first, body[0]) == (AUTH, CONTINUE)
    raw.send(auth_packet(CONTINUE, scram.final(properties(body, 1)[0x16])))
    return scram


def test_a_live_connection_re_authenticates(scram_broker):
    raw, _, code, _ = scram_connect(scram_broker, "alice", "wonderland", "scram-re")
    try:
        assert code == 0
        again = reauthenticate(raw, "wonderland")
        first, body = raw.read_packet()
        assert (first, body[0]) == (AUTH, 0x00), "AUTH Success"
        assert properties(body, 1)[0x16] == again.expected_server_final
        # Still connected: PINGREQ is answered.
        raw.send(bytes([0xC0, 0x00]))
        assert raw.read_packet()[0] == 0xD0
    finally:
        raw.close()


def test_failed_re_authentication_disconnects_with_0x87(scram_broker):
    raw, _, code, _ = scram_connect(scram_broker, "alice", "wonderland", "scram-re-bad")
    try:
        assert code == 0
        reauthenticate(raw, "cheshire")
        packets = raw.read_until_closed()
        assert [(p[0], p[1][0]) for p in packets] == [(0xE0, NOT_AUTHORIZED)]
    finally:
        raw.close()


def test_re_authentication_without_enhanced_auth_is_a_protocol_error(broker):
    raw = RawClient(*broker.addr)
    try:
        raw.send(connect_packet("plain", level=5))
        assert raw.read_packet()[0] == 0x20
        raw.send(auth_packet(REAUTHENTICATE, ScramClient("alice", "x").first()))
        packets = raw.read_until_closed()
        assert [(p[0], p[1][0]) for p in packets] == [(0xE0, PROTOCOL_ERROR)]
    finally:
        raw.close()
