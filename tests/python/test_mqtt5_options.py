"""MQTT 5.0 flow control, size limits, subscription options, forwarded properties, inbound topic aliases and the
CONNACK capability flags, against the running broker with paho-mqtt 5 clients and raw sockets (where a client
must misbehave or hold back its acknowledgements)."""

from __future__ import annotations

import struct

import pytest

from mqtt_support import (PacketTypes, RawClient, connect_packet, mqtt, mqtt_str, packet, props, subscribe_packet,
                          varint)

V5 = mqtt.MQTTv5


def v5(clients, client_id: str, **kwargs):
    return clients(client_id, protocol=V5, **kwargs)


# -- raw 5.0 packets ---------------------------------------------------------------------------------------


def publish_v5(topic: str, payload: bytes, qos: int = 0, packet_id: int = 1, properties: bytes = b"") -> bytes:
    body = mqtt_str(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    body += varint(len(properties)) + properties + payload
    return packet(0x30 | (qos << 1), body)


def u16_prop(pid: int, value: int) -> bytes:
    return bytes([pid]) + struct.pack("!H", value)


def raw_v5(b, client_id: str, properties: bytes = b"") -> RawClient:
    raw = RawClient(*b.addr)
    raw.send(connect_packet(client_id, level=5, v5_properties=properties))
    first, body = raw.read_packet()
    assert first == 0x20 and body[1] == 0, f"CONNACK {first:#x} {body!r}"
    return raw


def publish_packet_id(first: int, body: bytes) -> int:
    """Packet id of a QoS 1/2 PUBLISH body."""
    assert first & 0xF0 == 0x30 and first & 0x06, f"expected a QoS 1/2 PUBLISH, got {first:#x}"
    topic_len = struct.unpack("!H", body[:2])[0]
    return struct.unpack("!H", body[2 + topic_len:4 + topic_len])[0]


def publish_payload(body: bytes) -> bytes:
    """Payload of a QoS 1/2 5.0 PUBLISH body (topic, packet id, properties skipped)."""
    i = 2 + struct.unpack("!H", body[:2])[0] + 2
    length, shift = 0, 0
    while True:
        b = body[i]
        length |= (b & 0x7F) << shift
        shift += 7
        i += 1
        if not b & 0x80:
            break
    return body[i + length:]


def disconnect_reason(raw: RawClient) -> int:
    packets = raw.read_until_closed()
    assert packets and packets[-1][0] == 0xE0, f"expected DISCONNECT, got {packets!r}"
    return packets[-1][1][0]


# -- flow control ------------------------------------------------------------------------------------------


def nothing_arrives(raw: RawClient, seconds: float) -> bool:
    """True if no packet arrives within ``seconds`` (a bounded negative check)."""
    try:
        return raw.read_packet(timeout=seconds) is None
    except AssertionError as e:
        if "no complete packet" in str(e):
            return True
        raise


def test_the_broker_never_exceeds_the_clients_receive_maximum(broker, clients):
    sub = raw_v5(broker, "slow-acker", u16_prop(0x21, 2))  # Receive Maximum 2
    try:
        sub.send(subscribe_packet(1, [("rm/t", 1)], v5=True))
        assert sub.read_packet()[0] == 0x90
        pub = v5(clients, "rm-pub")
        pub.connect_ok()
        for i in range(6):
            pub.publish("rm/t", f"m{i}".encode(), qos=1)
        got, outstanding = [], []
        for _ in range(2):
            first, body = sub.read_packet()
            outstanding.append(publish_packet_id(first, body))
            got.append(body)
        assert nothing_arrives(sub, 0.5), "a third PUBLISH while two are unacknowledged exceeds Receive Maximum"
        for _ in range(4):
            sub.send(packet(0x40, struct.pack("!H", outstanding.pop(0))))  # PUBACK the oldest: room for one
            first, body = sub.read_packet()
            outstanding.append(publish_packet_id(first, body))
            got.append(body)
        assert [publish_payload(b) for b in got] == [f"m{i}".encode() for i in range(6)], "all, in order"
    finally:
        sub.close()


def test_exceeding_the_brokers_receive_maximum_is_0x93(broker_factory):
    b = broker_factory("--receive-maximum", "2")
    raw = raw_v5(b, "greedy")
    try:
        for pid in (1, 2, 3):  # three QoS 2 PUBLISHes, none released
            raw.send(publish_v5("rm/q2", b"x", qos=2, packet_id=pid))
        packets = raw.read_until_closed()
        assert [p[0] for p in packets[:2]] == [0x50, 0x50], "the first two get PUBREC"
        assert (packets[-1][0], packets[-1][1][0]) == (0xE0, 0x93), "Receive Maximum exceeded"
    finally:
        raw.close()


def test_a_message_larger_than_the_clients_maximum_packet_size_is_not_sent_to_it(broker, clients):
    sub = v5(clients, "small-sub")
    sub.connect_ok(properties=props(PacketTypes.CONNECT, MaximumPacketSize=200))
    assert sub.subscribe("size/c", 1) == [1]
    pub = v5(clients, "size-pub")
    pub.connect_ok()
    pub.publish("size/c", b"small-1", qos=1)
    pub.publish("size/c", b"x" * 500, qos=1)
    pub.publish("size/c", b"small-2", qos=1)
    sub.expect("size/c", b"small-1")
    sub.expect("size/c", b"small-2")  # the next one: the large message was dropped for this client


# -- subscription options ----------------------------------------------------------------------------------


def test_subscription_identifiers_of_every_matching_subscription(broker, clients):
    sub = v5(clients, "ids")
    sub.connect_ok()
    assert sub.subscribe("si/#", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7)) == [1]
    assert sub.subscribe("si/+", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=9)) == [1]
    assert sub.subscribe("plain/t", 1) == [1]
    pub = v5(clients, "ids-pub")
    pub.connect_ok()
    pub.publish("si/a", b"both", qos=1)
    m = sub.expect("si/a", b"both")
    assert sorted(m.properties.SubscriptionIdentifier) == [7, 9], "one delivery carrying both identifiers"
    pub.publish("plain/t", b"none", qos=1)
    m = sub.expect("plain/t", b"none")
    assert getattr(m.properties, "SubscriptionIdentifier", None) in (None, []), "no identifier was given"


def test_retain_as_published(broker, clients):
    keep = v5(clients, "rap-keep")
    keep.connect_ok()
    assert keep.subscribe("rap/t", options=mqtt.SubscribeOptions(qos=1, retainAsPublished=True)) == [1]
    clear = v5(clients, "rap-clear")
    clear.connect_ok()
    assert clear.subscribe("rap/t", options=mqtt.SubscribeOptions(qos=1, retainAsPublished=False)) == [1]
    pub = v5(clients, "rap-pub")
    pub.connect_ok()
    pub.publish("rap/t", b"live", qos=1, retain=True)
    keep.expect("rap/t", b"live", retain=True)
    clear.expect("rap/t", b"live", retain=False)


@pytest.mark.parametrize("handling,first,again", [(0, True, True), (1, True, False), (2, False, False)])
def test_retain_handling(broker, clients, handling, first, again):
    pub = v5(clients, "rh-pub")
    pub.connect_ok()
    pub.publish("rh/t", b"kept", qos=1, retain=True)
    sub = v5(clients, f"rh-sub{handling}")
    sub.connect_ok()
    for expected in (first, again):
        assert sub.subscribe("rh/t", options=mqtt.SubscribeOptions(qos=1, retainHandling=handling)) == [1]
        # A live, non-retained marker after the SUBACK: whatever the subscribe delivered comes before it.
        pub.publish("rh/t", b"marker", qos=1)
        if expected:
            sub.expect("rh/t", b"kept", retain=True)
        sub.expect("rh/t", b"marker", retain=False)


# -- session expiry at DISCONNECT ----------------------------------------------------------------------------


def test_session_expiry_lowered_to_zero_at_disconnect_ends_the_session(broker, clients):
    c = v5(clients, "shorten")
    c.connect_ok(clean_start=True, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    assert c.subscribe("se/t", 1) == [1]
    c._client.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))
    c.wait_disconnected()
    again = v5(clients, "shorten")
    ack = again.connect_ok(clean_start=False, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    assert not ack.session_present, "the session ended with its connection"


def test_raising_session_expiry_from_zero_at_disconnect_is_a_protocol_error(broker):
    raw = raw_v5(broker, "raise")  # session expiry 0
    try:
        expiry = bytes([0x11]) + struct.pack("!I", 60)
        raw.send(packet(0xE0, bytes([0x00]) + varint(len(expiry)) + expiry))
        assert disconnect_reason(raw) == 0x82
    finally:
        raw.close()


# -- forwarded properties ----------------------------------------------------------------------------------


def test_response_topic_correlation_data_and_user_properties_are_forwarded_in_order(broker, clients):
    sub = v5(clients, "responder")
    sub.connect_ok()
    assert sub.subscribe("req/t", 1) == [1]
    pub = v5(clients, "requester")
    pub.connect_ok()
    p = props(PacketTypes.PUBLISH, ResponseTopic="resp/requester", CorrelationData=b"\x00\x01\xff",
              ContentType="application/json")
    p.UserProperty = [("k", "1"), ("z", "2"), ("k", "3")]
    pub.publish("req/t", b"{}", qos=1, properties=p)
    m = sub.expect("req/t", b"{}")
    assert m.properties.ResponseTopic == "resp/requester"
    assert m.properties.CorrelationData == b"\x00\x01\xff"
    assert m.properties.ContentType == "application/json"
    assert m.properties.UserProperty == [("k", "1"), ("z", "2"), ("k", "3")], "unchanged and in order"


# -- inbound topic aliases ---------------------------------------------------------------------------------


def test_a_client_topic_alias_is_set_then_used(broker, clients):
    sub = v5(clients, "alias-sub")
    sub.connect_ok()
    assert sub.subscribe("ta/t", 1) == [1]
    raw = raw_v5(broker, "aliaser")
    try:
        raw.send(publish_v5("ta/t", b"first", qos=1, packet_id=1, properties=u16_prop(0x23, 1)))
        raw.send(publish_v5("", b"second", qos=1, packet_id=2, properties=u16_prop(0x23, 1)))
        assert [raw.read_packet()[0] for _ in range(2)] == [0x40, 0x40]
        sub.expect("ta/t", b"first")
        sub.expect("ta/t", b"second")
    finally:
        raw.close()


@pytest.mark.parametrize("topic,alias,code", [("ta/t", 0, 0x94), ("ta/t", 3, 0x94), ("", 2, 0x82)])
def test_a_bad_topic_alias_disconnects(broker_factory, topic, alias, code):
    b = broker_factory("--topic-alias-maximum", "2")
    raw = raw_v5(b, "bad-alias")
    try:
        raw.send(publish_v5(topic, b"x", properties=u16_prop(0x23, alias)))
        assert disconnect_reason(raw) == code
    finally:
        raw.close()


# -- capability flags --------------------------------------------------------------------------------------


CAPABILITIES = ("--max-qos", "1", "--retain-available", "false", "--wildcard-subscriptions", "false",
                "--subscription-identifiers", "false", "--topic-alias-maximum", "5", "--receive-maximum", "10",
                "--max-packet-size", "2048")


def test_connack_announces_the_configured_capabilities(broker_factory, clients):
    b = broker_factory(*CAPABILITIES)
    c = v5(clients, "caps", target=b)
    p = c.connect_ok().properties
    assert p.MaximumQoS == 1
    assert p.RetainAvailable == 0
    assert p.WildcardSubscriptionAvailable == 0
    assert p.SubscriptionIdentifierAvailable == 0
    assert p.TopicAliasMaximum == 5
    assert p.ReceiveMaximum == 10
    assert p.MaximumPacketSize == 2048
    # And enforces them without ending the connection where the spec allows a per-filter refusal.
    assert c.subscribe("caps/t", 2) == [1], "QoS 2 is granted as 1"
    assert c.subscribe("caps/+", 1) == [0xA2], "wildcards are refused"


@pytest.mark.parametrize("what,make,code", [
    ("QoS 2 publish", lambda: publish_v5("caps/t", b"x", qos=2), 0x9B),
    ("retained publish", lambda: packet(0x31, mqtt_str("caps/t") + varint(0) + b"x"), 0x9A),
    ("subscription identifier", lambda: packet(0x82, struct.pack("!H", 1) + varint(2) + bytes([0x0B, 5])
                                                + mqtt_str("caps/t") + bytes([1])), 0xA1),
])
def test_refused_capabilities_disconnect(broker_factory, what, make, code):
    b = broker_factory(*CAPABILITIES)
    raw = raw_v5(b, "caps-raw")
    try:
        raw.send(make())
        assert disconnect_reason(raw) == code, what
    finally:
        raw.close()


def test_invalid_utf8_announced_as_utf8_at_qos0_disconnects_with_0x99(broker):
    raw = raw_v5(broker, "pfi")
    try:
        raw.send(publish_v5("pf/t", b"\xff\xfe", properties=bytes([0x01, 0x01])))
        assert disconnect_reason(raw) == 0x99
    finally:
        raw.close()


# -- packet identifiers ------------------------------------------------------------------------------------


def test_acks_for_unknown_packet_identifiers_get_0x92(broker):
    raw = raw_v5(broker, "unknown-ids")
    try:
        raw.send(packet(0x62, struct.pack("!H", 77)))  # PUBREL for a QoS 2 message never received
        first, body = raw.read_packet()
        assert (first, struct.unpack("!H", body[:2])[0], body[2]) == (0x70, 77, 0x92), "PUBCOMP 0x92"
        raw.send(packet(0x50, struct.pack("!H", 78)))  # PUBREC for a message never sent
        first, body = raw.read_packet()
        assert (first, struct.unpack("!H", body[:2])[0], body[2]) == (0x62, 78, 0x92), "PUBREL 0x92"
        raw.send(bytes([0xC0, 0x00]))
        assert raw.read_packet()[0] == 0xD0, "the connection goes on"
    finally:
        raw.close()


# -- quotas ------------------------------------------------------------------------------------------------


def test_subscriptions_beyond_the_clients_quota_get_0x97(broker_factory, clients):
    b = broker_factory("--max-subscriptions", "2")
    c = v5(clients, "quota", target=b)
    c.connect_ok()
    assert c.subscribe("q/1", 1) == [1]
    assert c.subscribe("q/2", 1) == [1]
    assert c.subscribe("q/3", 1) == [0x97], "Quota exceeded"
    assert c.subscribe("q/1", 0) == [0], "replacing an existing subscription is within the quota"


def test_a_subscriber_whose_queue_overflows_under_the_disconnect_policy_gets_0x97(broker_factory, clients):
    b = broker_factory("--max-queue", "10", "--queue-overflow", "disconnect")
    stalled = raw_v5(b, "stalled")
    try:
        stalled.send(subscribe_packet(1, [("flood/t", 0)], v5=True))
        assert stalled.read_packet()[0] == 0x90
        pub = v5(clients, "flooder", target=b)
        pub.connect_ok()
        # The stalled client reads nothing: its socket buffers, then its outgoing queue of 10, fill up.
        for _ in range(400):
            pub.publish("flood/t", b"x" * 65000, qos=0)
        packets = stalled.read_until_closed()
        assert (packets[-1][0], packets[-1][1][0]) == (0xE0, 0x97), "DISCONNECT Quota exceeded, after the backlog"
    finally:
        stalled.close()
