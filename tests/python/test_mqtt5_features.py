"""MQTT 5.0 features over real sockets: flow control (Receive Maximum both ways), the client's Maximum Packet Size,
Subscription Identifiers, Retain As Published and Retain Handling, Session Expiry changed at DISCONNECT, forwarded
request/response properties, inbound Topic Aliases, the CONNACK capability flags and their enforcement, and the
Payload Format Indicator.

paho-mqtt 2.1 clients publish and subscribe wherever paho can say what the test needs. A raw socket takes over where
a client must hold back its acknowledgements, send exactly chosen bytes (topic aliases, oversized or capability-
violating packets) or read a packet paho does not expose (PUBACK reason codes, exact packet sizes).

Negative checks ("nothing more arrives") never sleep: a raw client sends PINGREQ and every packet the broker writes
before the PINGRESP is what it had to send; a paho subscriber gets a marker published after the message under test
and must see the marker next.
"""

from __future__ import annotations

import struct

import pytest

from mqtt_support import (PacketTypes, RawClient, mqtt, mqtt_str, packet, props, subscribe_packet,
                          varint)
from paho.mqtt.properties import Properties

V5 = mqtt.MQTTv5

# Reason codes (MQTT 5.0, 2.4)
SUCCESS = 0x00
PROTOCOL_ERROR = 0x82
RECEIVE_MAXIMUM_EXCEEDED = 0x93
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
PAYLOAD_FORMAT_INVALID = 0x99
RETAIN_NOT_SUPPORTED = 0x9A
QOS_NOT_SUPPORTED = 0x9B
SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2

# Fixed-header first bytes / packet types
CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, PINGRESP, DISCONNECT = 0x20, 0x40, 0x50, 0x62, 0x70, 0x90, 0xD0, 0xE0


def v5(clients, client_id: str, **kwargs):
    return clients(client_id, protocol=V5, **kwargs)


# -- raw MQTT 5.0 packets ------------------------------------------------------------------------------------


def prop_bytes(packet_type: int, **values) -> bytes:
    """Encoded property section (length prefix included); no values gives the empty section b"\\x00"."""
    return props(packet_type, **values).pack()


def connect_v5(client_id: str, clean: bool = True, keepalive: int = 30, properties: bytes = b"\x00",
               will: tuple[str, bytes, int, bool] | None = None) -> bytes:
    """MQTT 5.0 CONNECT; ``will`` is (topic, payload, qos, retain)."""
    flags = 0x02 if clean else 0x00
    if will is not None:
        flags |= 0x04 | (will[2] << 3) | (0x20 if will[3] else 0)
    body = mqtt_str("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive) + properties + mqtt_str(client_id)
    if will is not None:
        body += b"\x00" + mqtt_str(will[0]) + mqtt_str(will[1])
    return packet(0x10, body)


def publish_v5(topic: str, payload: bytes, qos: int = 0, packet_id: int = 1, retain: bool = False,
               properties: bytes = b"\x00") -> bytes:
    body = mqtt_str(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    body += properties + payload
    return packet(0x30 | (qos << 1) | (1 if retain else 0), body)


def ack(first_byte: int, packet_id: int, reason_code: int | None = None) -> bytes:
    body = struct.pack("!H", packet_id) + (bytes([reason_code]) if reason_code is not None else b"")
    return packet(first_byte, body)


def packet_size(body: bytes) -> int:
    """Size on the wire of a packet with this body: fixed header byte, Remaining Length, body."""
    return 1 + len(varint(len(body))) + len(body)


def payload_for_size(make, size: int) -> bytes:
    """The payload of b"x"s that makes ``make(payload)`` exactly ``size`` bytes long."""
    for n in range(size):
        if len(make(b"x" * n)) == size:
            return b"x" * n
    raise ValueError(f"no payload gives a {size}-byte packet")


class Publish:
    def __init__(self, first: int, body: bytes):
        assert first & 0xF0 == 0x30, f"expected PUBLISH, got {first:#04x} {body!r}"
        self.qos = (first >> 1) & 3
        self.dup = bool(first & 0x08)
        self.retain = bool(first & 0x01)
        self.size = packet_size(body)
        n = struct.unpack("!H", body[:2])[0]
        self.topic = body[2:2 + n].decode()
        i = 2 + n
        self.packet_id = None
        if self.qos:
            self.packet_id = struct.unpack("!H", body[i:i + 2])[0]
            i += 2
        self.properties, used = Properties(PacketTypes.PUBLISH).unpack(body[i:])
        self.payload = body[i + used:]

    def __repr__(self) -> str:
        return f"PUBLISH({self.topic!r}, {self.payload[:20]!r}, qos={self.qos}, id={self.packet_id})"


def read_publish(raw: RawClient) -> Publish:
    p = raw.read_packet()
    assert p is not None, "connection closed while a PUBLISH was expected"
    return Publish(*p)


def read_ack(raw: RawClient, first_byte: int) -> tuple[int, int]:
    """(packet id, reason code) of the next packet, which must be the given acknowledgement."""
    p = raw.read_packet()
    assert p is not None, f"connection closed while waiting for {first_byte:#04x}"
    first, body = p
    assert first == first_byte, f"expected {first_byte:#04x}, got {first:#04x} {body!r}"
    return struct.unpack("!H", body[:2])[0], (body[2] if len(body) > 2 else SUCCESS)


def ping_barrier(raw: RawClient) -> list[tuple[int, bytes]]:
    """PINGREQ, then every packet up to the PINGRESP: what the broker wrote before answering the ping."""
    raw.send(bytes([0xC0, 0x00]))
    before = []
    while True:
        p = raw.read_packet()
        assert p is not None, "connection closed while waiting for PINGRESP"
        if p[0] == PINGRESP:
            return before
        before.append(p)


def closed_with(raw: RawClient) -> int:
    """Reads until the broker closes the connection; the last packet must be a DISCONNECT: its reason code."""
    packets = raw.read_until_closed()
    assert packets and packets[-1][0] == DISCONNECT, f"expected DISCONNECT then close, got {packets!r}"
    body = packets[-1][1]
    return body[0] if body else SUCCESS


def raw_session(b, client_id: str, clean: bool = True, **connect_props) -> tuple[RawClient, Properties, bool]:
    """Raw 5.0 connection: (client, CONNACK properties, session present)."""
    raw = RawClient(*b.addr)
    raw.send(connect_v5(client_id, clean=clean, properties=prop_bytes(PacketTypes.CONNECT, **connect_props)))
    p = raw.read_packet()
    assert p is not None and p[0] == CONNACK, f"expected CONNACK, got {p!r}"
    body = p[1]
    assert body[1] == SUCCESS, f"CONNACK refused with {body[1]:#04x}"
    connack_props, _ = Properties(PacketTypes.CONNACK).unpack(body[2:])
    return raw, connack_props, bool(body[0] & 1)


def raw_connack(b, connect: bytes) -> tuple[int, Properties]:
    """Sends a CONNECT; (reason code, properties) of the CONNACK."""
    raw = RawClient(*b.addr)
    try:
        raw.send(connect)
        p = raw.read_packet()
        assert p is not None and p[0] == CONNACK, f"expected CONNACK, got {p!r}"
        connack_props, _ = Properties(PacketTypes.CONNACK).unpack(p[1][2:])
        return p[1][1], connack_props
    finally:
        raw.close()


# == 1. flow control ========================================================================================


def test_broker_keeps_at_most_receive_maximum_qos1_publishes_unacknowledged(broker, clients):
    sub, _, _ = raw_session(broker, "fc-sub", ReceiveMaximum=2)
    try:
        sub.send(subscribe_packet(1, [("fc/q1", 1)], v5=True))
        assert read_ack(sub, SUBACK)[0] == 1
        pub = v5(clients, "fc-pub")
        pub.connect_ok()
        sent = [f"m{i}".encode() for i in range(7)]
        for payload in sent:
            pub.publish("fc/q1", payload, qos=1)  # each PUBACKed: the broker holds all seven for fc-sub

        got = [read_publish(sub), read_publish(sub)]
        assert ping_barrier(sub) == [], "a third PUBLISH while two are unacknowledged exceeds Receive Maximum 2"
        outstanding = [m.packet_id for m in got]
        while len(got) < len(sent):
            sub.send(ack(PUBACK, outstanding.pop(0)))  # one acknowledged: room for exactly one more
            m = read_publish(sub)
            got.append(m)
            outstanding.append(m.packet_id)
            assert ping_barrier(sub) == [], f"more than one PUBLISH for one PUBACK (after {len(got)})"
            assert len(outstanding) == 2
        for packet_id in outstanding:
            sub.send(ack(PUBACK, packet_id))
        assert ping_barrier(sub) == [], "nothing left to send once all seven were delivered"

        assert [m.payload for m in got] == sent, "every message, once, in order"
        assert all(m.qos == 1 and not m.dup for m in got)
        assert len({m.packet_id for m in got[:2]}) == 2
    finally:
        sub.close()


def test_receive_maximum_quota_of_a_qos2_delivery_returns_at_pubcomp_not_pubrec(broker, clients):
    """MQTT 5.0 4.9: the send quota is incremented by PUBCOMP (or a PUBREC with an error), not by PUBREC."""
    sub, _, _ = raw_session(broker, "fc2-sub", ReceiveMaximum=2)
    try:
        sub.send(subscribe_packet(1, [("fc/q2", 2)], v5=True))
        assert read_ack(sub, SUBACK)[0] == 1
        pub = v5(clients, "fc2-pub")
        pub.connect_ok()
        sent = [f"q2-{i}".encode() for i in range(4)]
        for payload in sent:
            pub.publish("fc/q2", payload, qos=2)

        first = [read_publish(sub), read_publish(sub)]
        for m in first:
            sub.send(ack(PUBREC, m.packet_id))
        assert sorted(read_ack(sub, PUBREL)[0] for _ in first) == sorted(m.packet_id for m in first)
        assert ping_barrier(sub) == [], "PUBREC must not free the quota: a PUBLISH before PUBCOMP"

        got = list(first)
        for m in first:
            sub.send(ack(PUBCOMP, m.packet_id))
            nxt = read_publish(sub)
            got.append(nxt)
            sub.send(ack(PUBREC, nxt.packet_id))
            assert read_ack(sub, PUBREL)[0] == nxt.packet_id
            sub.send(ack(PUBCOMP, nxt.packet_id))
        assert ping_barrier(sub) == []
        assert [m.payload for m in got] == sent
        assert all(m.qos == 2 for m in got)
    finally:
        sub.close()


def test_more_unreleased_qos2_publishes_than_the_brokers_receive_maximum_is_0x93(broker_factory):
    b = broker_factory("--receive-maximum", "2")
    raw, connack, _ = raw_session(b, "greedy")
    try:
        assert connack.ReceiveMaximum == 2
        # Within the quota: two unreleased, one released, then one more is still only two unreleased.
        raw.send(publish_v5("rm/in", b"1", qos=2, packet_id=1))
        raw.send(publish_v5("rm/in", b"2", qos=2, packet_id=2))
        assert [read_ack(raw, PUBREC) for _ in range(2)] == [(1, SUCCESS), (2, SUCCESS)]
        raw.send(ack(PUBREL, 1))
        assert read_ack(raw, PUBCOMP) == (1, SUCCESS)
        raw.send(publish_v5("rm/in", b"3", qos=2, packet_id=3))
        assert read_ack(raw, PUBREC) == (3, SUCCESS), "released messages do not count against Receive Maximum"
        # Ids 2 and 3 unreleased: a third is one more than Receive Maximum.
        raw.send(publish_v5("rm/in", b"4", qos=2, packet_id=4))
        assert closed_with(raw) == RECEIVE_MAXIMUM_EXCEEDED
    finally:
        raw.close()


# == 2. Maximum Packet Size towards the client ===============================================================


def test_a_message_larger_than_the_subscribers_maximum_packet_size_is_skipped(broker, clients):
    sub = v5(clients, "small-sub")
    sub.connect_ok(properties=props(PacketTypes.CONNECT, MaximumPacketSize=200))
    assert sub.subscribe("mps/t", 1) == [1]
    pub = v5(clients, "mps-pub")
    pub.connect_ok()
    for qos in (0, 1, 2):
        pub.publish("mps/t", f"before q{qos}".encode(), qos=qos)
        pub.publish("mps/t", b"L" * 500, qos=qos)
        pub.publish("mps/t", f"after q{qos}".encode(), qos=qos)
    for qos in (0, 1, 2):
        sub.expect("mps/t", f"before q{qos}".encode(), qos=min(qos, 1))
        sub.expect("mps/t", f"after q{qos}".encode(), qos=min(qos, 1))  # next: the large one was discarded


def test_the_client_maximum_packet_size_boundary_counts_every_byte_of_the_publish(broker, clients):
    """A PUBLISH of exactly Maximum Packet Size bytes is sent, one byte more is not (3.1.2.25), counting the
    properties the broker adds for this subscriber (here a Subscription Identifier)."""
    sub, _, _ = raw_session(broker, "edge-sub", MaximumPacketSize=200)
    try:
        sub.send(subscribe_packet(1, [("edge/plain", 1)], v5=True))
        assert read_ack(sub, SUBACK)[0] == 1
        with_id = (struct.pack("!H", 2) + prop_bytes(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=5)
                   + mqtt_str("edge/ident") + bytes([1]))
        sub.send(packet(0x82, with_id))
        assert read_ack(sub, SUBACK)[0] == 2

        # As delivered to edge/plain: topic, packet id, empty properties, payload. "edge/ident" is as long, and
        # its deliveries carry 2 bytes more: the Subscription Identifier property.
        exact = payload_for_size(lambda payload: publish_v5("edge/plain", payload, qos=1), 200)
        pub = v5(clients, "edge-pub")
        pub.connect_ok()
        pub.publish("edge/plain", exact, qos=1)
        pub.publish("edge/plain", exact + b"+", qos=1)
        pub.publish("edge/ident", exact, qos=1)  # 202 bytes with the Subscription Identifier
        pub.publish("edge/ident", exact[:-2], qos=1)  # 200 bytes with it
        got = []
        for _ in range(2):
            m = read_publish(sub)
            got.append((m.topic, len(m.payload), m.size, getattr(m.properties, "SubscriptionIdentifier", None)))
            sub.send(ack(PUBACK, m.packet_id))
        assert ping_barrier(sub) == [], "nothing larger than 200 bytes"
        assert got == [("edge/plain", len(exact), 200, None), ("edge/ident", len(exact) - 2, 200, [5])]
    finally:
        sub.close()


def test_a_discarded_oversized_message_does_not_hold_a_receive_maximum_slot(broker, clients):
    """The broker behaves as if it had completed sending the discarded message (3.1.2.25): with Receive Maximum 1,
    the message after it still arrives."""
    sub, _, _ = raw_session(broker, "slot-sub", MaximumPacketSize=200, ReceiveMaximum=1)
    try:
        sub.send(subscribe_packet(1, [("slot/t", 1)], v5=True))
        assert read_ack(sub, SUBACK)[0] == 1
        pub = v5(clients, "slot-pub")
        pub.connect_ok()
        pub.publish("slot/t", b"L" * 500, qos=1)
        pub.publish("slot/t", b"small", qos=1)
        m = read_publish(sub)
        assert (m.topic, m.payload) == ("slot/t", b"small")
    finally:
        sub.close()


def test_a_retained_message_larger_than_the_subscribers_maximum_packet_size_is_not_sent(broker, clients):
    pub = v5(clients, "mpsr-pub")
    pub.connect_ok()
    pub.publish("mpsr/big", b"L" * 500, qos=1, retain=True)
    pub.publish("mpsr/small", b"small", qos=1, retain=True)
    sub = v5(clients, "mpsr-sub")
    sub.connect_ok(properties=props(PacketTypes.CONNECT, MaximumPacketSize=200))
    assert sub.subscribe("mpsr/big", 1) == [1]
    assert sub.subscribe("mpsr/small", 1) == [1]
    sub.expect("mpsr/small", b"small", retain=True)


# == 3. Subscription Identifiers ==============================================================================


def test_overlapping_subscriptions_deliver_once_with_every_identifier(broker, clients):
    sub = v5(clients, "ids")
    sub.connect_ok()
    assert sub.subscribe("si/#", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7)) == [1]
    assert sub.subscribe("si/+", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=9)) == [1]
    assert sub.subscribe("si/a", 1) == [1]  # overlapping too, without an identifier
    assert sub.subscribe("plain/t", 1) == [1]
    pub = v5(clients, "ids-pub")
    pub.connect_ok()
    pub.publish("si/a", b"both", qos=1)
    pub.publish("plain/t", b"none", qos=1)
    m = sub.expect("si/a", b"both")
    assert sorted(m.properties.SubscriptionIdentifier) == [7, 9], "one copy carrying both identifiers"
    m = sub.expect("plain/t", b"none")  # next: there was one copy of "both"
    assert not hasattr(m.properties, "SubscriptionIdentifier"), "a subscription without identifier gets none"


def test_resubscribing_without_an_identifier_removes_it(broker, clients):
    sub = v5(clients, "ids-re")
    sub.connect_ok()
    assert sub.subscribe("sr/#", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7)) == [1]
    assert sub.subscribe("sr/+", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=9)) == [1]
    assert sub.subscribe("sr/+", 1) == [1]  # replaces the subscription, now without identifier
    pub = v5(clients, "ids-re-pub")
    pub.connect_ok()
    pub.publish("sr/a", b"after", qos=1)
    m = sub.expect("sr/a", b"after")
    assert m.properties.SubscriptionIdentifier == [7]


def test_a_retained_message_sent_on_subscribe_carries_the_subscription_identifier(broker, clients):
    pub = v5(clients, "idr-pub")
    pub.connect_ok()
    pub.publish("sret/t", b"kept", qos=1, retain=True)
    sub = v5(clients, "idr-sub")
    sub.connect_ok()
    assert sub.subscribe("sret/+", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=42)) == [1]
    m = sub.expect("sret/t", b"kept", retain=True)
    assert m.properties.SubscriptionIdentifier == [42]


# == 4. Retain As Published, Retain Handling ==================================================================


def test_retain_as_published_on_live_delivery(broker, clients):
    keep = v5(clients, "rap-keep")
    keep.connect_ok()
    assert keep.subscribe("rap/t", options=mqtt.SubscribeOptions(qos=1, retainAsPublished=True)) == [1]
    clear = v5(clients, "rap-clear")
    clear.connect_ok()
    assert clear.subscribe("rap/t", options=mqtt.SubscribeOptions(qos=1, retainAsPublished=False)) == [1]
    pub = v5(clients, "rap-pub")
    pub.connect_ok()
    pub.publish("rap/t", b"retained live", qos=1, retain=True)
    pub.publish("rap/t", b"not retained", qos=1, retain=False)
    keep.expect("rap/t", b"retained live", retain=True)
    keep.expect("rap/t", b"not retained", retain=False)
    clear.expect("rap/t", b"retained live", retain=False)
    clear.expect("rap/t", b"not retained", retain=False)


def test_retained_messages_sent_on_subscribe_have_the_retain_flag_whatever_retain_as_published(broker, clients):
    """3.8.3.1: retained messages sent when the subscription is established have RETAIN 1."""
    pub = v5(clients, "rapr-pub")
    pub.connect_ok()
    pub.publish("rapr/t", b"kept", qos=1, retain=True)
    sub = v5(clients, "rapr-sub")
    sub.connect_ok()
    assert sub.subscribe("rapr/t", options=mqtt.SubscribeOptions(qos=1, retainAsPublished=False)) == [1]
    sub.expect("rapr/t", b"kept", retain=True)


@pytest.mark.parametrize("handling,on_subscribe,on_resubscribe", [(0, True, True), (1, True, False),
                                                                  (2, False, False)])
def test_retain_handling(broker, clients, handling, on_subscribe, on_resubscribe):
    pub = v5(clients, "rh-pub")
    pub.connect_ok()
    pub.publish("rh/t", b"kept", qos=1, retain=True)
    sub = v5(clients, f"rh-sub{handling}")
    sub.connect_ok()
    for round_, expected in (("subscribe", on_subscribe), ("re-subscribe", on_resubscribe)):
        assert sub.subscribe("rh/t", options=mqtt.SubscribeOptions(qos=1, retainHandling=handling)) == [1]
        # A live marker after the SUBACK: a retained message sent for this SUBSCRIBE comes before it.
        marker = f"marker after {round_}".encode()
        pub.publish("rh/t", marker, qos=1)
        if expected:
            sub.expect("rh/t", b"kept", retain=True)
        sub.expect("rh/t", marker, retain=False)


def test_retain_handling_1_sends_again_after_unsubscribe(broker, clients):
    pub = v5(clients, "rh1-pub")
    pub.connect_ok()
    pub.publish("rh1/t", b"kept", qos=1, retain=True)
    sub = v5(clients, "rh1-sub")
    sub.connect_ok()
    opts = mqtt.SubscribeOptions(qos=1, retainHandling=1)
    assert sub.subscribe("rh1/t", options=opts) == [1]
    sub.expect("rh1/t", b"kept", retain=True)
    assert sub.unsubscribe("rh1/t") == [SUCCESS]
    assert sub.subscribe("rh1/t", options=opts) == [1]  # a new subscription again
    sub.expect("rh1/t", b"kept", retain=True)


# == 5. Session Expiry Interval changed at DISCONNECT =========================================================


def test_session_expiry_set_to_zero_at_disconnect_ends_the_session(broker, clients):
    c = v5(clients, "shorten")
    c.connect_ok(clean_start=True, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    assert c.subscribe("sed/t", 1) == [1]
    c.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))

    pub = v5(clients, "sed-pub")
    pub.connect_ok()
    pub.publish("sed/t", b"to the ended session", qos=1)
    again = v5(clients, "shorten")
    ack_ = again.connect_ok(clean_start=False, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    assert ack_.session_present is False, "the session ended at DISCONNECT"
    assert again.subscribe("sed/marker", 1) == [1]
    pub.publish("sed/t", b"to the old subscription", qos=1)
    pub.publish("sed/marker", b"marker", qos=1)
    again.expect("sed/marker", b"marker")  # neither the queued message nor the old subscription survived


def test_session_expiry_changed_to_another_nonzero_value_keeps_the_session(broker, clients):
    c = v5(clients, "lengthen")
    c.connect_ok(clean_start=True, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    assert c.subscribe("sel/t", 1) == [1]
    c.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=120))
    pub = v5(clients, "sel-pub")
    pub.connect_ok()
    pub.publish("sel/t", b"queued", qos=1)
    again = v5(clients, "lengthen")
    assert again.connect_ok(clean_start=False, properties=props(PacketTypes.CONNECT,
                                                                SessionExpiryInterval=60)).session_present is True
    again.expect("sel/t", b"queued", qos=1)


def test_nonzero_session_expiry_at_disconnect_after_zero_at_connect_is_0x82(broker):
    raw, _, _ = raw_session(broker, "raise")  # no Session Expiry Interval: 0
    try:
        raw.send(packet(DISCONNECT, bytes([SUCCESS]) + prop_bytes(PacketTypes.DISCONNECT, SessionExpiryInterval=60)))
        assert closed_with(raw) == PROTOCOL_ERROR, "3.14.2.2.2: a Protocol Error"
    finally:
        raw.close()
    again, _, present = raw_session(broker, "raise", clean=False, SessionExpiryInterval=60)
    again.close()
    assert present is False, "the session (expiry 0) ended with its connection"


# == 6. Response Topic, Correlation Data, User Properties =====================================================


USER_PROPERTIES = [("k", "1"), ("z", "2"), ("k", "3"), ("k", "1"), ("empty", "")]


def request_properties() -> Properties:
    p = props(PacketTypes.PUBLISH, ResponseTopic="resp/requester/7", CorrelationData=b"\x00\xffcorr\x01")
    p.UserProperty = list(USER_PROPERTIES)
    return p


def assert_request_properties(m) -> None:
    assert m.properties.ResponseTopic == "resp/requester/7"
    assert m.properties.CorrelationData == b"\x00\xffcorr\x01"
    assert m.properties.UserProperty == USER_PROPERTIES, "every user property, repeated keys too, in order"


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_request_response_properties_are_forwarded_unchanged(broker, clients, qos):
    sub = v5(clients, "responder")
    sub.connect_ok()
    assert sub.subscribe("req/t", 2) == [2]
    pub = v5(clients, "requester")
    pub.connect_ok()
    pub.publish("req/t", b"request", qos=qos, properties=request_properties())
    assert_request_properties(sub.expect("req/t", b"request", qos=qos))


def test_request_response_properties_are_kept_with_a_retained_message(broker, clients):
    pub = v5(clients, "requester")
    pub.connect_ok()
    pub.publish("reqr/t", b"retained request", qos=1, retain=True, properties=request_properties())
    sub = v5(clients, "late-responder")
    sub.connect_ok()
    assert sub.subscribe("reqr/t", 1) == [1]
    assert_request_properties(sub.expect("reqr/t", b"retained request", retain=True))


# == 7. inbound Topic Aliases =================================================================================


def alias(n: int) -> bytes:
    """Property section with Topic Alias ``n`` (by hand: paho refuses to encode 0)."""
    return varint(3) + bytes([0x23]) + struct.pack("!H", n)


def test_a_topic_alias_set_by_the_client_is_resolved_for_subscribers(broker, clients):
    sub = v5(clients, "alias-sub")
    sub.connect_ok()
    assert sub.subscribe("ta/#", 1) == [1]
    raw, connack, _ = raw_session(broker, "aliaser")
    try:
        assert connack.TopicAliasMaximum >= 1
        raw.send(publish_v5("ta/first", b"sets alias 1", qos=1, packet_id=1, properties=alias(1)))
        raw.send(publish_v5("", b"uses alias 1", qos=1, packet_id=2, properties=alias(1)))
        raw.send(publish_v5("ta/second", b"remaps alias 1", qos=1, packet_id=3, properties=alias(1)))
        raw.send(publish_v5("", b"uses the new mapping", qos=1, packet_id=4, properties=alias(1)))
        assert [read_ack(raw, PUBACK) for _ in range(4)] == [(i, SUCCESS) for i in range(1, 5)]
    finally:
        raw.close()
    for topic, payload in [("ta/first", b"sets alias 1"), ("ta/first", b"uses alias 1"),
                           ("ta/second", b"remaps alias 1"), ("ta/second", b"uses the new mapping")]:
        m = sub.expect(topic, payload, qos=1)
        assert not hasattr(m.properties, "TopicAlias"), "the subscriber asked for no aliases"


def test_topic_aliases_do_not_survive_the_network_connection(broker):
    """[MQTT-3.3.2-7]: mappings are not carried from one Network Connection to the next, even in one session."""
    raw, _, _ = raw_session(broker, "forgetful", SessionExpiryInterval=60)
    try:
        raw.send(publish_v5("tc/t", b"x", qos=1, packet_id=1, properties=alias(1)))
        assert read_ack(raw, PUBACK) == (1, SUCCESS)
        raw.send(packet(DISCONNECT, b""))
        assert raw.read_until_closed() == []
    finally:
        raw.close()
    again, _, present = raw_session(broker, "forgetful", clean=False, SessionExpiryInterval=60)
    try:
        assert present is True
        again.send(publish_v5("", b"y", qos=1, packet_id=2, properties=alias(1)))
        assert closed_with(again) == PROTOCOL_ERROR
    finally:
        again.close()


@pytest.mark.parametrize("topic,alias_value,code", [
    ("ta/t", 0, TOPIC_ALIAS_INVALID),
    ("ta/t", 3, TOPIC_ALIAS_INVALID),
    ("", 3, TOPIC_ALIAS_INVALID),
    ("", 2, PROTOCOL_ERROR),  # in range, but not set on this connection
    ("", 0, TOPIC_ALIAS_INVALID),
], ids=["zero", "above-maximum", "empty-topic-above-maximum", "empty-topic-unknown-alias", "empty-topic-zero"])
def test_a_bad_topic_alias_is_disconnected(broker_factory, clients, topic, alias_value, code):
    b = broker_factory("--topic-alias-maximum", "2")
    sub = v5(clients, "bad-alias-sub", target=b)
    sub.connect_ok()
    assert sub.subscribe("#", 1) == [1]
    raw, connack, _ = raw_session(b, "bad-alias")
    try:
        assert connack.TopicAliasMaximum == 2
        raw.send(publish_v5("ta/ok", b"alias 1 is set", qos=1, packet_id=1, properties=alias(1)))
        assert read_ack(raw, PUBACK) == (1, SUCCESS)
        raw.send(publish_v5(topic, b"refused", qos=1, packet_id=2, properties=alias(alias_value)))
        assert closed_with(raw) == code
    finally:
        raw.close()
    sub.expect("ta/ok", b"alias 1 is set")
    pub = v5(clients, "marker", target=b)
    pub.connect_ok()
    pub.publish("ta/marker", b"marker", qos=1)
    sub.expect("ta/marker", b"marker")  # next: the refused PUBLISH was not delivered


# == 8. capability flags ======================================================================================


def test_default_connack_announces_full_capabilities(broker, clients):
    c = v5(clients, "defaults")
    p = c.connect_ok().properties
    # Absent means "supported"; Maximum QoS 2 must not be sent at all (3.2.2.3.4: a value other than 0 or 1
    # is a Protocol Error).
    assert not hasattr(p, "MaximumQoS"), f"Maximum QoS {getattr(p, 'MaximumQoS', None)!r} sent"
    assert getattr(p, "RetainAvailable", 1) == 1
    assert getattr(p, "WildcardSubscriptionAvailable", 1) == 1
    assert getattr(p, "SubscriptionIdentifierAvailable", 1) == 1
    assert p.ReceiveMaximum == 128
    assert p.TopicAliasMaximum == 64
    assert p.MaximumPacketSize == 1048576


@pytest.mark.parametrize("max_qos", [0, 1])
def test_max_qos_is_announced_and_enforced(broker_factory, clients, max_qos):
    b = broker_factory("--max-qos", str(max_qos))
    c = v5(clients, f"maxqos{max_qos}", target=b)
    assert c.connect_ok().properties.MaximumQoS == max_qos
    assert c.subscribe("mq/t", 2) == [max_qos], "a QoS 2 subscription is granted the maximum"
    c.publish("mq/t", b"allowed", qos=max_qos)
    c.expect("mq/t", b"allowed", qos=max_qos)

    raw, _, _ = raw_session(b, "too-high")
    try:
        raw.send(publish_v5("mq/t", b"refused", qos=max_qos + 1, packet_id=1))
        assert closed_with(raw) == QOS_NOT_SUPPORTED
    finally:
        raw.close()
    c.publish("mq/t", b"marker", qos=max_qos)
    c.expect("mq/t", b"marker")  # next: the refused PUBLISH was not delivered


def test_a_will_qos_above_maximum_qos_is_refused_at_connect(broker_factory):
    """3.2.2.3.4: the Server MUST reject the connection; SHOULD with 0x9B."""
    b = broker_factory("--max-qos", "1")
    code, _ = raw_connack(b, connect_v5("will-q2", will=("will/t", b"w", 2, False)))
    assert code == QOS_NOT_SUPPORTED
    code, _ = raw_connack(b, connect_v5("will-q1", will=("will/t", b"w", 1, False)))
    assert code == SUCCESS


def test_retain_unavailable_is_announced_and_enforced(broker_factory, clients):
    b = broker_factory("--retain-available", "false")
    c = v5(clients, "noretain", target=b)
    assert c.connect_ok().properties.RetainAvailable == 0
    assert c.subscribe("nr/t", 1) == [1]
    c.publish("nr/t", b"plain", qos=1)
    c.expect("nr/t", b"plain", retain=False)

    raw, _, _ = raw_session(b, "retainer")
    try:
        raw.send(publish_v5("nr/t", b"retained", qos=1, packet_id=1, retain=True))
        assert closed_with(raw) == RETAIN_NOT_SUPPORTED
    finally:
        raw.close()
    c.publish("nr/t", b"marker", qos=1)
    c.expect("nr/t", b"marker")  # next: the refused PUBLISH was not delivered
    late = v5(clients, "late", target=b)
    late.connect_ok()
    assert late.subscribe("nr/t", 1) == [1]
    c.publish("nr/t", b"marker 2", qos=1)
    late.expect("nr/t", b"marker 2", retain=False)  # nothing retained


def test_a_retained_will_is_refused_at_connect_when_retain_is_unavailable(broker_factory):
    """3.2.2.3.5: the Server MUST reject the connection; SHOULD with 0x9A."""
    b = broker_factory("--retain-available", "false")
    code, _ = raw_connack(b, connect_v5("will-ret", will=("will/t", b"w", 0, True)))
    assert code == RETAIN_NOT_SUPPORTED
    code, _ = raw_connack(b, connect_v5("will-plain", will=("will/t", b"w", 0, False)))
    assert code == SUCCESS


def test_wildcard_subscriptions_unavailable_are_announced_and_a_wildcard_is_disconnect_0xa2(broker_factory, clients):
    """§3.2.2.3.11: a client told Wildcard Subscription Available = 0 that subscribes with one commits a Protocol
    Error; the broker disconnects it with 0xA2. Plain filters are served."""
    b = broker_factory("--wildcard-subscriptions", "false")
    c = v5(clients, "nowild", target=b)
    assert c.connect_ok().properties.WildcardSubscriptionAvailable == 0
    assert c.subscribe("a/b", 1) == [1], "plain filters still work"
    c.publish("a/b", b"plain", qos=1)
    c.expect("a/b", b"plain")

    raw, _, _ = raw_session(b, "nowild-raw")
    try:
        raw.send(subscribe_packet(3, [("a/b", 1), ("+/b", 1)], v5=True))
        packets = raw.read_until_closed()
        assert [(p[0], p[1][0]) for p in packets] == [(0xE0, WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED)]
    finally:
        raw.close()


def test_subscription_identifiers_unavailable_are_announced_and_refused(broker_factory, clients):
    b = broker_factory("--subscription-identifiers", "false")
    c = v5(clients, "noids", target=b)
    assert c.connect_ok().properties.SubscriptionIdentifierAvailable == 0
    assert c.subscribe("ni/t", 1) == [1], "a SUBSCRIBE without identifier is served"
    c.publish("ni/t", b"ok", qos=1)
    c.expect("ni/t", b"ok")
    rc, _mid = c.paho.subscribe("ni/u", options=mqtt.SubscribeOptions(qos=1),
                                properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=3))
    assert rc == mqtt.MQTT_ERR_SUCCESS
    info = c.wait_disconnected()
    assert info.from_server and info.reason_code == SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED, info


def test_topic_alias_maximum_is_announced_and_is_the_limit(broker_factory, clients):
    b = broker_factory("--topic-alias-maximum", "5")
    sub = v5(clients, "tam-sub", target=b)
    assert sub.connect_ok().properties.TopicAliasMaximum == 5
    assert sub.subscribe("tam/#", 1) == [1]
    raw, connack, _ = raw_session(b, "tam-pub")
    try:
        assert connack.TopicAliasMaximum == 5
        raw.send(publish_v5("tam/five", b"set", qos=1, packet_id=1, properties=alias(5)))
        raw.send(publish_v5("", b"used", qos=1, packet_id=2, properties=alias(5)))
        assert [read_ack(raw, PUBACK) for _ in range(2)] == [(1, SUCCESS), (2, SUCCESS)]
        raw.send(publish_v5("tam/six", b"refused", qos=1, packet_id=3, properties=alias(6)))
        assert closed_with(raw) == TOPIC_ALIAS_INVALID
    finally:
        raw.close()
    sub.expect("tam/five", b"set")
    sub.expect("tam/five", b"used")


def test_receive_maximum_is_announced_and_is_the_limit(broker_factory):
    b = broker_factory("--receive-maximum", "10")
    raw, connack, _ = raw_session(b, "rm10")
    try:
        assert connack.ReceiveMaximum == 10
        for pid in range(1, 11):
            raw.send(publish_v5("rm10/t", b"x", qos=2, packet_id=pid))
        assert [read_ack(raw, PUBREC) for _ in range(10)] == [(pid, SUCCESS) for pid in range(1, 11)]
        raw.send(publish_v5("rm10/t", b"x", qos=2, packet_id=11))
        assert closed_with(raw) == RECEIVE_MAXIMUM_EXCEEDED
    finally:
        raw.close()


def test_maximum_packet_size_is_announced_and_is_the_limit(broker_factory):
    b = broker_factory("--max-packet-size", "2048")
    raw, connack, _ = raw_session(b, "mps2048")
    try:
        assert connack.MaximumPacketSize == 2048
        exact = payload_for_size(lambda p: publish_v5("mps/in", p, qos=1, packet_id=1), 2048)
        raw.send(publish_v5("mps/in", exact, qos=1, packet_id=1))
        assert read_ack(raw, PUBACK) == (1, SUCCESS), "a packet of exactly Maximum Packet Size is accepted"
        raw.send(publish_v5("mps/in", exact + b"+", qos=1, packet_id=2))
        assert closed_with(raw) == PACKET_TOO_LARGE
    finally:
        raw.close()


# == 9. Payload Format Indicator ==============================================================================


UTF8 = prop_bytes(PacketTypes.PUBLISH, PayloadFormatIndicator=1)
BINARY = prop_bytes(PacketTypes.PUBLISH, PayloadFormatIndicator=0)
NOT_UTF8 = b"caf\xc3 \xff\xfe"


def test_invalid_utf8_payload_announced_as_utf8_at_qos1_and_qos2_is_refused_in_the_ack(broker, clients):
    sub = v5(clients, "pfi-sub")
    sub.connect_ok()
    assert sub.subscribe("pfi/t", 2) == [2]
    raw, _, _ = raw_session(broker, "pfi-pub")
    try:
        raw.send(publish_v5("pfi/t", NOT_UTF8, qos=1, packet_id=1, properties=UTF8))
        assert read_ack(raw, PUBACK) == (1, PAYLOAD_FORMAT_INVALID)
        raw.send(publish_v5("pfi/t", NOT_UTF8, qos=2, packet_id=2, properties=UTF8))
        assert read_ack(raw, PUBREC) == (2, PAYLOAD_FORMAT_INVALID)
        # The connection goes on: valid UTF-8, and the same bytes announced as binary, are delivered.
        raw.send(publish_v5("pfi/t", "café".encode(), qos=1, packet_id=3, properties=UTF8))
        assert read_ack(raw, PUBACK) == (3, SUCCESS)
        raw.send(publish_v5("pfi/t", NOT_UTF8, qos=1, packet_id=4, properties=BINARY))
        assert read_ack(raw, PUBACK) == (4, SUCCESS)
    finally:
        raw.close()
    m = sub.expect("pfi/t", "café".encode(), qos=1)  # first: the refused ones were not delivered
    assert m.properties.PayloadFormatIndicator == 1, "forwarded unaltered (3.3.2.3.2)"
    m = sub.expect("pfi/t", NOT_UTF8, qos=1)
    assert getattr(m.properties, "PayloadFormatIndicator", 0) == 0


def test_invalid_utf8_payload_announced_as_utf8_at_qos0_is_disconnect_0x99(broker, clients):
    sub = v5(clients, "pfi0-sub")
    sub.connect_ok()
    assert sub.subscribe("pfi0/t", 1) == [1]
    raw, _, _ = raw_session(broker, "pfi0-pub")
    try:
        raw.send(publish_v5("pfi0/t", NOT_UTF8, qos=0, properties=UTF8))
        assert closed_with(raw) == PAYLOAD_FORMAT_INVALID
    finally:
        raw.close()
    pub = v5(clients, "pfi0-marker")
    pub.connect_ok()
    pub.publish("pfi0/t", b"marker", qos=1)
    sub.expect("pfi0/t", b"marker")  # first: the refused message was not delivered
