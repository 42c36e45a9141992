"""ractmq against paho-mqtt speaking MQTT 5.0."""

from __future__ import annotations

import time

import pytest

from mqtt_support import (PacketTypes, RawClient, connect_packet, mqtt, props, publish_packet, reason,
                          reconnect_race, suback_codes, subscribe_packet)

V5 = mqtt.MQTTv5

SESSION_TAKEN_OVER = 0x8E
NO_SUBSCRIPTION_EXISTED = 0x11
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
PACKET_TOO_LARGE = 0x95
DISCONNECT_WITH_WILL = 0x04
KEEP_ALIVE_TIMEOUT = 0x8D


def session(expiry: int):
    return props(PacketTypes.CONNECT, SessionExpiryInterval=expiry)


def v5(clients, client_id: str, **kwargs):
    return clients(client_id, protocol=V5, **kwargs)


# -- basics ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sub_qos", [0, 1, 2])
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
def test_effective_qos_is_min_of_publish_and_subscription(clients, pub_qos, sub_qos):
    sub = v5(clients, "sub")
    sub.connect_ok()
    assert sub.subscribe("qos5/t", sub_qos) == [sub_qos]
    pub = v5(clients, "pub")
    pub.connect_ok()
    payload = f"v5 p{pub_qos} s{sub_qos}".encode()
    pub.publish("qos5/t", payload, qos=pub_qos)
    sub.expect("qos5/t", payload, qos=min(pub_qos, sub_qos), retain=False)


def test_user_properties_and_content_type_are_forwarded(clients):
    sub = v5(clients, "sub")
    sub.connect_ok()
    assert sub.subscribe("meta/t", 1) == [1]
    pub = v5(clients, "pub")
    pub.connect_ok()
    p = props(PacketTypes.PUBLISH, ContentType="application/json", UserProperty=[("k", "v")],
              ResponseTopic="meta/reply", CorrelationData=b"\x01\x02")
    pub.publish("meta/t", b"{}", qos=1, properties=p)
    m = sub.expect("meta/t", b"{}", qos=1)
    assert m.properties.ContentType == "application/json"
    assert m.properties.UserProperty == [("k", "v")]
    assert m.properties.ResponseTopic == "meta/reply"
    assert m.properties.CorrelationData == b"\x01\x02"


def test_no_local_subscription_option(clients):
    c = v5(clients, "nolocal")
    c.connect_ok()
    assert c.subscribe("nl/t", options=mqtt.SubscribeOptions(qos=1, noLocal=True)) == [1]
    assert c.subscribe("nl/marker", 1) == [1]
    c.publish("nl/t", b"own message", qos=1)
    c.publish("nl/marker", b"marker", qos=1)
    c.expect("nl/marker", b"marker")


# -- connect / session -------------------------------------------------------------------------------------


def test_assigned_client_identifier(clients):
    c = v5(clients, "")
    ack = c.connect_ok()
    assigned = getattr(ack.properties, "AssignedClientIdentifier", None)
    assert assigned, "CONNACK for an empty client id must carry an Assigned Client Identifier"
    # The assigned id works like any other: a second connection with it takes the session over.
    assert c.subscribe("assigned/t", 1) == [1]
    c.publish("assigned/t", b"hi", qos=1)
    c.expect("assigned/t", b"hi")
    other = v5(clients, "")
    other_assigned = other.connect_ok().properties.AssignedClientIdentifier
    assert other_assigned != assigned, "two clients got the same assigned identifier"


def test_no_assigned_identifier_when_client_id_given(clients):
    c = v5(clients, "named")
    ack = c.connect_ok()
    assert not hasattr(ack.properties, "AssignedClientIdentifier")


def test_session_expiry_resumes_session_with_queued_messages(clients):
    first = v5(clients, "keeper")
    assert first.connect_ok(clean_start=True, properties=session(60)).session_present is False
    assert first.subscribe("sx/t", 1) == [1]
    first.disconnect()

    pub = v5(clients, "pub")
    pub.connect_ok()
    pub.publish("sx/t", b"while away 1", qos=1)
    pub.publish("sx/t", b"while away 2", qos=2)

    again = v5(clients, "keeper")
    assert again.connect_ok(clean_start=False, properties=session(60)).session_present is True
    again.expect("sx/t", b"while away 1", qos=1)
    again.expect("sx/t", b"while away 2", qos=1)
    pub.publish("sx/t", b"live", qos=1)
    again.expect("sx/t", b"live", qos=1)


def test_session_expiry_zero_ends_session_at_disconnect(clients):
    first = v5(clients, "ephemeral")
    assert first.connect_ok(clean_start=True, properties=session(0)).session_present is False
    assert first.subscribe("s0/t", 1) == [1]
    first.disconnect()

    pub = v5(clients, "pub")
    pub.connect_ok()
    pub.publish("s0/t", b"nobody home", qos=1)

    again = v5(clients, "ephemeral")
    assert again.connect_ok(clean_start=False, properties=session(60)).session_present is False
    assert again.subscribe("s0/t", 1) == [1]
    pub.publish("s0/t", b"marker", qos=1)
    again.expect("s0/t", b"marker", qos=1)


def test_session_expiry_absent_means_zero(clients):
    first = v5(clients, "noexpiry")
    first.connect_ok(clean_start=True)  # no Session Expiry Interval property
    assert first.subscribe("sa/t", 1) == [1]
    first.disconnect()
    again = v5(clients, "noexpiry")
    assert again.connect_ok(clean_start=False).session_present is False


def test_clean_start_discards_existing_session(clients):
    first = v5(clients, "restart")
    first.connect_ok(clean_start=True, properties=session(60))
    assert first.subscribe("cs5/t", 1) == [1]
    first.disconnect()
    pub = v5(clients, "pub")
    pub.connect_ok()
    pub.publish("cs5/t", b"dropped with the session", qos=1)
    again = v5(clients, "restart")
    assert again.connect_ok(clean_start=True, properties=session(60)).session_present is False
    assert again.subscribe("cs5/#", 1) == [1]
    pub.publish("cs5/marker", b"marker", qos=1)
    again.expect("cs5/marker", b"marker")


def test_takeover_sends_session_taken_over(clients):
    first = v5(clients, "dup5")
    first.connect_ok(properties=session(60))
    assert first.subscribe("take5/t", 1) == [1]
    second = v5(clients, "dup5")
    ack = second.connect_ok(clean_start=False, properties=session(60))
    assert ack.session_present is True
    info = first.wait_disconnected()
    assert info.from_server, "the broker must send DISCONNECT to the old connection"
    assert info.reason_code == SESSION_TAKEN_OVER, f"DISCONNECT reason 0x{info.reason_code:02x}, expected 0x8E"
    # The resumed session kept the subscription.
    second.publish("take5/t", b"still subscribed", qos=1)
    second.expect("take5/t", b"still subscribed", qos=1)


def test_takeover_of_expiry_zero_session_does_not_resume_it(clients):
    """Session Expiry 0: the session ends when its Network Connection closes (3.1.2.11.2), and a takeover
    closes that connection, so the new connection cannot resume it."""
    first = v5(clients, "tko5")
    first.connect_ok(clean_start=True)  # expiry absent = 0
    assert first.subscribe("tko5/a", 1) == [1]
    second = v5(clients, "tko5")
    assert second.connect_ok(clean_start=False, properties=session(60)).session_present is False
    info = first.wait_disconnected()
    assert info.reason_code == SESSION_TAKEN_OVER
    second.publish("tko5/a", b"to the old subscription", qos=1)
    assert second.subscribe("tko5/marker", 1) == [1]
    second.publish("tko5/marker", b"marker", qos=1)
    second.expect("tko5/marker", b"marker")


def test_reconnect_right_after_disconnect_of_expiry_zero_session(broker):
    reconnect_race(broker, level=5)


# -- wills -------------------------------------------------------------------------------------------------


def test_disconnect_with_will_message_publishes_will(clients):
    watcher = v5(clients, "watcher")
    watcher.connect_ok()
    assert watcher.subscribe("will5/#", 1) == [1]
    c = v5(clients, "leaver")
    c.will_set("will5/leaver", b"left with will", qos=1)
    c.connect_ok()
    c.disconnect(reasoncode=reason(PacketTypes.DISCONNECT, DISCONNECT_WITH_WILL))
    watcher.expect("will5/leaver", b"left with will", qos=1, retain=False)


def test_normal_disconnect_does_not_publish_will(clients):
    watcher = v5(clients, "watcher")
    watcher.connect_ok()
    assert watcher.subscribe("will5/#", 1) == [1]
    assert watcher.subscribe("$SYS/broker/clients/connected", 0) == [0]
    c = v5(clients, "polite")
    c.will_set("will5/polite", b"must not appear", qos=1)
    c.connect_ok()
    c.disconnect()  # reason 0x00
    watcher.wait_for(lambda m: m.topic.startswith("$SYS") and not m.retain and m.payload == b"1", timeout=6,
                     what="live clients/connected == 1")
    watcher.publish("will5/marker", b"marker", qos=1)
    m = watcher.wait_for(lambda m: not m.topic.startswith("$SYS"), what="marker")
    assert (m.topic, m.payload) == ("will5/marker", b"marker")


def test_will_on_abnormal_close_with_properties(clients):
    watcher = v5(clients, "watcher")
    watcher.connect_ok()
    assert watcher.subscribe("will5/#", 2) == [2]
    c = v5(clients, "crasher")
    c.will_set("will5/crasher", b"crashed", qos=2,
               properties=props(PacketTypes.WILLMESSAGE, ContentType="text/plain", UserProperty=[("why", "crash")]))
    c.connect_ok()
    c.drop()
    m = watcher.expect("will5/crasher", b"crashed", qos=2)
    assert m.properties.ContentType == "text/plain"
    assert m.properties.UserProperty == [("why", "crash")]


WILL_DELAY = 2


def _delayed_will_client(clients, client_id):
    c = v5(clients, client_id)
    c.will_set("will5/delayed", b"delayed will", qos=1,
               properties=props(PacketTypes.WILLMESSAGE, WillDelayInterval=WILL_DELAY))
    return c


def test_will_delay_interval(clients):
    watcher = v5(clients, "watcher")
    watcher.connect_ok()
    assert watcher.subscribe("will5/#", 1) == [1]
    c = _delayed_will_client(clients, "delayer")
    c.connect_ok(properties=session(60))
    dropped_at = time.monotonic()
    c.drop()
    m = watcher.expect("will5/delayed", b"delayed will", qos=1, timeout=WILL_DELAY + 4)
    elapsed = m.at - dropped_at
    assert elapsed >= WILL_DELAY - 0.5, f"will published after {elapsed:.2f}s, before the {WILL_DELAY}s delay"


def test_will_delay_cancelled_by_reconnect(clients):
    watcher = v5(clients, "watcher")
    watcher.connect_ok()
    assert watcher.subscribe("will5/#", 1) == [1]
    c = _delayed_will_client(clients, "bouncer")
    c.connect_ok(properties=session(60))
    c.drop()
    back = v5(clients, "bouncer")
    assert back.connect_ok(clean_start=False, properties=session(60)).session_present is True
    # Past the delay window (plus margin) nothing may have been published; then the marker.
    watcher.expect_silence(WILL_DELAY + 1.5)
    back.publish("will5/marker", b"marker", qos=1)
    watcher.expect("will5/marker", b"marker")


def test_will_delay_longer_than_session_expiry_publishes_at_session_end(clients):
    watcher = v5(clients, "watcher")
    watcher.connect_ok()
    assert watcher.subscribe("will5/#", 1) == [1]
    c = v5(clients, "short-session")
    c.will_set("will5/session-end", b"session ended", qos=1,
               properties=props(PacketTypes.WILLMESSAGE, WillDelayInterval=60))
    c.connect_ok(properties=session(1))
    dropped_at = time.monotonic()
    c.drop()
    m = watcher.expect("will5/session-end", b"session ended", timeout=5)
    assert m.at - dropped_at < 4, "will must be published when the session ends (expiry 1 s), not after 60 s"


# -- reason codes ------------------------------------------------------------------------------------------


def test_unsubscribe_nonexistent_gives_0x11(clients):
    c = v5(clients, "unsub5")
    c.connect_ok()
    assert c.unsubscribe("never/subscribed") == [NO_SUBSCRIPTION_EXISTED]
    assert c.subscribe("now/subscribed", 1) == [1]
    assert c.unsubscribe("now/subscribed") == [0x00]
    assert c.unsubscribe("now/subscribed") == [NO_SUBSCRIPTION_EXISTED]


def test_suback_invalid_filter_is_0x8f(broker):
    # paho validates filters client-side and refuses "a/#/b", so the SUBSCRIBE goes out raw.
    raw = _raw_v5_session(broker, "badfilter")
    try:
        raw.send(subscribe_packet(5, [("a/#/b", 1)], v5=True))
        first, body = raw.read_packet()
        assert first == 0x90, f"expected SUBACK, got {first:#x} {body!r}"
        assert suback_codes(body, v5=True) == (5, [TOPIC_FILTER_INVALID])
        # A mixed SUBSCRIBE gets one code per filter, and the connection stays usable.
        raw.send(subscribe_packet(6, [("good/t", 1), ("bad/#/x", 0), ("also/+/good", 2)], v5=True))
        first, body = raw.read_packet()
        assert first == 0x90
        assert suback_codes(body, v5=True) == (6, [1, TOPIC_FILTER_INVALID, 2])
    finally:
        raw.close()


def test_shared_subscription_splits_messages_between_members(clients):
    members = []
    for i in range(2):
        m = v5(clients, f"member{i}")
        m.connect_ok()
        assert m.subscribe("$share/g/x", 1) == [1]
        members.append(m)
    pub = v5(clients, "shared-pub")
    pub.connect_ok()
    for i in range(10):
        pub.publish("x", f"m{i}".encode(), qos=1)
    # Round-robin: each member gets every other message, in order.
    assert [members[0].get().payload for _ in range(5)] == [f"m{i}".encode() for i in range(0, 10, 2)]
    assert [members[1].get().payload for _ in range(5)] == [f"m{i}".encode() for i in range(1, 10, 2)]


def _raw_v5_session(broker, client_id: str) -> RawClient:
    raw = RawClient(*broker.addr)
    raw.send(connect_packet(client_id, level=5))
    first, body = raw.read_packet()
    assert first == 0x20 and body[:2] == b"\x00\x00", f"CONNACK {first:#x} {body!r}"
    return raw


def test_publish_with_wildcard_topic_gets_disconnect_0x90(broker):
    # paho refuses to publish to a wildcard topic, so this is a raw PUBLISH after a raw CONNECT.
    raw = _raw_v5_session(broker, "wildcard-publisher")
    try:
        raw.send(publish_packet("a/+/b", b"bad", qos=0, v5=True))
        packets = raw.read_until_closed()
        assert packets and packets[0][0] == 0xE0, f"expected DISCONNECT, got {packets!r}"
        assert packets[0][1][:1] == bytes([TOPIC_NAME_INVALID]), f"DISCONNECT {packets[0][1]!r}, expected 0x90"
        assert len(packets) == 1
    finally:
        raw.close()


def test_publish_with_hash_topic_gets_disconnect_0x90(broker):
    raw = _raw_v5_session(broker, "hash-publisher")
    try:
        raw.send(publish_packet("a/#", b"bad", qos=1, packet_id=7, v5=True))
        packets = raw.read_until_closed()
        assert [(p[0], p[1][:1]) for p in packets] == [(0xE0, bytes([TOPIC_NAME_INVALID]))]
    finally:
        raw.close()


def test_packet_larger_than_max_packet_size_gets_disconnect_0x95(broker_factory, clients):
    b = broker_factory("--max-packet-size", "1024")
    c = v5(clients, "big", target=b)
    c.connect_ok()
    assert c.subscribe("size/t", 0) == [0]
    c.publish("size/t", b"x" * 900, qos=0)  # under the limit
    c.expect("size/t", b"x" * 900)
    c.publish_nowait("size/t", b"y" * 2000, qos=0)
    info = c.wait_disconnected()
    assert info.from_server, "the broker must send a DISCONNECT before closing"
    assert info.reason_code == PACKET_TOO_LARGE, f"DISCONNECT reason 0x{info.reason_code:02x}, expected 0x95"


def test_oversized_packet_raw_gets_disconnect_0x95(broker_factory):
    b = broker_factory("--max-packet-size", "1024")
    raw = _raw_v5_session(b, "big-raw")
    try:
        raw.send(publish_packet("size/t", b"z" * 4000, qos=1, packet_id=1, v5=True))
        packets = raw.read_until_closed()
        assert [(p[0], p[1][:1]) for p in packets] == [(0xE0, bytes([PACKET_TOO_LARGE]))]
    finally:
        raw.close()


# -- message expiry ----------------------------------------------------------------------------------------


def test_retained_message_expiry(clients):
    pub = v5(clients, "pub")
    pub.connect_ok()
    pub.publish("exp/t", b"short-lived", qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    early = v5(clients, "early")
    early.connect_ok()
    assert early.subscribe("exp/t", 1) == [1]
    m = early.expect("exp/t", b"short-lived", retain=True)
    expiry = getattr(m.properties, "MessageExpiryInterval", None)
    assert expiry is not None and expiry <= 1, f"forwarded Message Expiry Interval {expiry!r}"

    time.sleep(2.2)  # the retained message's lifetime is what is under test
    late = v5(clients, "late")
    late.connect_ok()
    assert late.subscribe("exp/t", 1) == [1]
    pub.publish("exp/t", b"marker", qos=1)
    late.expect("exp/t", b"marker", retain=False)


def test_offline_message_expiry(clients):
    first = v5(clients, "offline-exp")
    first.connect_ok(properties=session(60))
    assert first.subscribe("oexp/t", 1) == [1]
    first.disconnect()
    pub = v5(clients, "pub")
    pub.connect_ok()
    pub.publish("oexp/t", b"expires", qos=1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish("oexp/t", b"stays", qos=1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=60))
    time.sleep(2.2)  # let the first message expire while the session is offline
    again = v5(clients, "offline-exp")
    assert again.connect_ok(clean_start=False, properties=session(60)).session_present is True
    m = again.expect("oexp/t", b"stays", qos=1)
    assert 0 < m.properties.MessageExpiryInterval <= 58, "Message Expiry Interval must be reduced by the time queued"



# -- server capabilities and redirection -------------------------------------------------------------------


def test_server_keep_alive_is_announced_and_enforced(broker_factory, clients):
    b = broker_factory("--server-keep-alive", "1")
    c = v5(clients, "ka", target=b)
    ack = c.connect_ok(keepalive=60)
    assert getattr(ack.properties, "ServerKeepAlive", None) == 1, "CONNACK carries Server Keep Alive"
    # paho keeps its own 60 s timer, so it says nothing: the broker closes after 1.5 x 1 s.
    started = time.monotonic()
    info = c.wait_disconnected(timeout=10)
    assert info.from_server and info.reason_code == KEEP_ALIVE_TIMEOUT
    assert info.at - started >= 1.4, "not before 1.5 x the Server Keep Alive"


@pytest.mark.parametrize("asked,told", [(5, None), (60, None), (120, 60), (0, 60)])
def test_server_keep_alive_caps_what_clients_ask_for(broker_factory, clients, asked, told):
    b = broker_factory("--server-keep-alive", "60")
    c = v5(clients, f"cap{asked}", target=b)
    ack = c.connect_ok(keepalive=asked)
    assert getattr(ack.properties, "ServerKeepAlive", None) == told, "only longer keepalives (or none) are capped"


def test_response_information_when_requested(broker_factory, clients):
    b = broker_factory("--response-information", "replies/{clientid}/")
    asks = v5(clients, "asker", target=b)
    ack = asks.connect_ok(properties=props(PacketTypes.CONNECT, RequestResponseInformation=1))
    assert getattr(ack.properties, "ResponseInformation", None) == "replies/asker/"
    silent = v5(clients, "nonasker", target=b)
    ack = silent.connect_ok()
    assert getattr(ack.properties, "ResponseInformation", None) is None, "only for clients that ask"


@pytest.mark.parametrize("permanent,code", [(False, 0x9C), (True, 0x9D)])
def test_redirection_names_the_other_server(broker_factory, clients, permanent, code):
    flags = ["--redirect-to", "other.example:1883"] + (["--redirect-permanent"] if permanent else [])
    b = broker_factory(*flags)
    c = v5(clients, "moved", target=b)
    ack = c.connect()
    assert ack.reason_code == code
    assert getattr(ack.properties, "ServerReference", None) == "other.example:1883"
    old = clients("old-protocol", protocol=mqtt.MQTTv311, target=b)
    assert old.connect().reason_code == 0, "3.1.1 has no redirection: served as usual"


def test_a_subscription_sent_before_another_clients_publish_gets_it_20_times(broker, clients):
    """Eclipse Paho's test_subscribe_options, noLocal part: b sends its SUBSCRIBE and does not wait for the
    SUBACK, then a publishes. b's SUBSCRIBE was on the wire first, so it must take effect first, even while b's
    session is waking from hibernation (new sessions start hibernated). b writes its packets itself, so that
    they are written before a's PUBLISH; paho-mqtt's network thread would give no such order."""
    for n in range(20):
        a = v5(clients, f"a{n}")
        a.connect_ok()
        assert a.subscribe("fence/t", options=mqtt.SubscribeOptions(qos=2, noLocal=True)) == [2]
        b = _raw_v5_session(broker, f"b{n}")
        try:
            b.send(subscribe_packet(1, [("fence/t", 0x02 | 0x04)], v5=True))  # QoS 2, No Local
            a.publish("fence/t", f"noLocal test {n}".encode(), qos=1)
            first, body = b.read_packet()
            assert first == 0x90, f"SUBACK first, got {first:#x}"
            first, body = b.read_packet()
            assert first & 0xF0 == 0x30 and body.endswith(f"noLocal test {n}".encode()), (first, body)
        finally:
            b.close()
        a.disconnect()
