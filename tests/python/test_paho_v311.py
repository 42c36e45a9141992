"""ractmq against paho-mqtt speaking MQTT 3.1.1 (and 3.1)."""

from __future__ import annotations

import pytest

from mqtt_support import RawClient, connect_packet, mqtt, packet, reconnect_race, subscribe_packet

V311 = mqtt.MQTTv311


# -- publish / subscribe -----------------------------------------------------------------------------


@pytest.mark.parametrize("sub_qos", [0, 1, 2])
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
def test_effective_qos_is_min_of_publish_and_subscription(clients, pub_qos, sub_qos):
    sub = clients("sub")
    sub.connect_ok()
    assert sub.subscribe("qos/t", sub_qos) == [sub_qos], "SUBACK must grant the requested QoS"
    pub = clients("pub")
    pub.connect_ok()
    payload = f"p{pub_qos}-s{sub_qos}".encode()
    pub.publish("qos/t", payload, qos=pub_qos)
    sub.expect("qos/t", payload, qos=min(pub_qos, sub_qos), retain=False)


def test_qos_stream_order_and_payloads(clients):
    sub = clients("sub")
    sub.connect_ok()
    assert sub.subscribe("stream/+", 2) == [2]
    pub = clients("pub")
    pub.connect_ok()
    # Topic stream/N carries QoS N. Order is guaranteed per topic (an Ordered Topic, 4.6), not across
    # topics of different QoS: a client hands a QoS 2 message over only when its PUBREL arrives.
    sent = [(f"stream/{i % 3}", f"m{i}".encode() * (i + 1), i % 3) for i in range(30)]
    for topic, payload, qos in sent:
        pub.publish(topic, payload, qos=qos)
    got: dict[str, list[tuple[bytes, int]]] = {}
    for _ in sent:
        m = sub.get()
        got.setdefault(m.topic, []).append((m.payload, m.qos))
    expected: dict[str, list[tuple[bytes, int]]] = {}
    for topic, payload, qos in sent:
        expected.setdefault(topic, []).append((payload, qos))
    assert got == expected


def test_publisher_receives_own_message_and_wildcards(clients):
    c = clients("self")
    c.connect_ok()
    assert c.subscribe("home/+/temp", 1) == [1]
    assert c.subscribe("office/#", 0) == [0]
    c.publish("home/kitchen/temp", b"21.5", qos=1)
    c.expect("home/kitchen/temp", b"21.5", qos=1, retain=False)
    c.publish("home/kitchen/humidity", b"40", qos=1)  # matches nothing
    c.publish("office", b"parent", qos=1)  # "office/#" matches "office" too
    c.expect("office", b"parent", qos=0)


def test_unsubscribe_stops_delivery(clients):
    c = clients("unsub")
    c.connect_ok()
    assert c.subscribe("u/a", 1) == [1]
    assert c.subscribe("u/marker", 1) == [1]
    c.publish("u/a", b"before", qos=1)
    c.expect("u/a", b"before")
    c.unsubscribe("u/a")
    c.publish("u/a", b"after", qos=1)
    c.publish("u/marker", b"marker", qos=1)
    c.expect("u/marker", b"marker")


# -- retained messages ---------------------------------------------------------------------------------


def test_retained_set_replace_clear(clients):
    pub = clients("pub")
    pub.connect_ok()

    pub.publish("ret/t", b"first", qos=1, retain=True)
    s1 = clients("s1")
    s1.connect_ok()
    assert s1.subscribe("ret/t", 1) == [1]
    s1.expect("ret/t", b"first", qos=1, retain=True)

    # A live message to an established subscription carries RETAIN=0 [MQTT-3.3.1-9].
    pub.publish("ret/t", b"second", qos=1, retain=True)
    s1.expect("ret/t", b"second", qos=1, retain=False)

    s2 = clients("s2")
    s2.connect_ok()
    assert s2.subscribe("ret/#", 0) == [0]
    s2.expect("ret/t", b"second", qos=0, retain=True)

    # An empty retained payload clears it; it is still forwarded to current subscribers.
    pub.publish("ret/t", b"", qos=1, retain=True)
    s1.expect("ret/t", b"", retain=False)
    s3 = clients("s3")
    s3.connect_ok()
    assert s3.subscribe("ret/t", 1) == [1]
    pub.publish("ret/t", b"marker", qos=1, retain=False)
    s3.expect("ret/t", b"marker", retain=False)


def test_retained_delivered_to_wildcard_subscription(clients):
    pub = clients("pub")
    pub.connect_ok()
    pub.publish("rw/a/x", b"ax", qos=0, retain=True)
    pub.publish("rw/b/x", b"bx", qos=1, retain=True)
    pub.publish("rw/b/y", b"by", qos=2, retain=True)
    sub = clients("sub")
    sub.connect_ok()
    assert sub.subscribe("rw/+/x", 2) == [2]
    got = {}
    for _ in range(2):
        m = sub.get()
        got[m.topic] = (m.payload, m.qos, m.retain)
    assert got == {"rw/a/x": (b"ax", 0, True), "rw/b/x": (b"bx", 1, True)}
    pub.publish("rw/marker/x", b"marker", qos=1)
    sub.expect("rw/marker/x", b"marker", retain=False)


# -- wills -------------------------------------------------------------------------------------------------


def test_will_published_on_abnormal_close(clients):
    watcher = clients("watcher")
    watcher.connect_ok()
    assert watcher.subscribe("will/#", 1) == [1]
    dying = clients("dying")
    dying.will_set("will/dying", b"gone unexpectedly", qos=1)
    dying.connect_ok()
    dying.drop()  # TCP close without DISCONNECT
    watcher.expect("will/dying", b"gone unexpectedly", qos=1, retain=False)


def test_retained_will(clients):
    dying = clients("dying")
    dying.will_set("will/status", b"offline", qos=1, retain=True)
    dying.connect_ok()
    dying.drop()
    # The will is published asynchronously after the close: `watcher` gets it either live or as the
    # retained message, and once it has it, any later subscriber must get it retained.
    watcher = clients("watcher")
    watcher.connect_ok()
    assert watcher.subscribe("will/status", 1) == [1]
    m = watcher.get()
    assert (m.topic, m.payload) == ("will/status", b"offline")
    late = clients("late")
    late.connect_ok()
    assert late.subscribe("will/status", 1) == [1]
    late.expect("will/status", b"offline", retain=True)


def test_will_on_keepalive_timeout(clients, broker):
    watcher = clients("watcher")
    watcher.connect_ok()
    assert watcher.subscribe("ka/#", 1) == [1]
    # A raw client with keepalive 1 s that never sends anything: the broker must close it after 1.5 s
    # [MQTT-3.1.2-24] and publish its will.
    silent = RawClient(*broker.addr, timeout=5)
    try:
        silent.send(connect_packet("silent", level=4, keepalive=1, will=("ka/silent", b"timed out", 1)))
        assert silent.read_packet() == (0x20, b"\x00\x00")
        watcher.expect("ka/silent", b"timed out", qos=1, timeout=5)
        assert silent.read_until_closed() == [], "the broker must close the timed-out connection"
    finally:
        silent.close()


def test_no_will_on_normal_disconnect(clients):
    watcher = clients("watcher")
    watcher.connect_ok()
    assert watcher.subscribe("will/#", 1) == [1]
    polite = clients("polite")
    polite.will_set("will/polite", b"should not appear", qos=1)
    polite.connect_ok()
    polite.disconnect()
    # Wait until the broker itself reports `polite` gone (a live $SYS clients/connected of 1, the
    # watcher), so the close has been handled, then send the marker.
    sys_watch = clients("sys-watch")
    sys_watch.connect_ok()
    assert sys_watch.subscribe("$SYS/broker/clients/connected", 0) == [0]
    sys_watch.wait_for(lambda m: not m.retain and m.payload == b"2", timeout=6,  # watcher + sys-watch
                       what="live clients/connected == 2")
    sys_watch.publish("will/marker", b"marker", qos=1)
    watcher.expect("will/marker", b"marker")


# -- sessions ----------------------------------------------------------------------------------------------


def test_persistent_session_receives_offline_messages(clients):
    first = clients("persist", clean_session=False)
    assert first.connect_ok().session_present is False
    assert first.subscribe("offline/t", 1) == [1]
    first.disconnect()

    pub = clients("pub")
    pub.connect_ok()
    for i in range(3):
        pub.publish("offline/t", f"queued-{i}".encode(), qos=1)

    again = clients("persist", clean_session=False)
    assert again.connect_ok().session_present is True
    for i in range(3):
        again.expect("offline/t", f"queued-{i}".encode(), qos=1)
    # The subscription is part of the session: live messages flow without re-subscribing.
    pub.publish("offline/t", b"live", qos=1)
    again.expect("offline/t", b"live", qos=1, retain=False)
    again.disconnect()

    # A clean session discards it.
    clean = clients("persist", clean_session=True)
    assert clean.connect_ok().session_present is False
    clean.disconnect()
    after = clients("persist", clean_session=False)
    assert after.connect_ok().session_present is False


def test_unacknowledged_qos1_redelivered_with_dup_on_reconnect(clients, broker):
    """[MQTT-4.4.0-1]: on reconnect with CleanSession=0 the server re-sends unacknowledged PUBLISH
    packets with their original packet identifiers, and DUP=1 [MQTT-3.3.1-1]."""
    raw = RawClient(*broker.addr)
    raw.send(connect_packet("redeliver", level=4, clean=False))
    assert raw.read_packet() == (0x20, b"\x00\x00")
    raw.send(subscribe_packet(1, [("rd/t", 1)]))
    assert raw.read_packet() == (0x90, b"\x00\x01\x01")
    pub = clients("pub")
    pub.connect_ok()
    pub.publish("rd/t", b"ack me", qos=1)
    first, body = raw.read_packet()
    assert first == 0x32, f"first delivery: {first:#x} (expected QoS 1, DUP 0)"
    expected_tail = body[len(b"\x00\x04rd/t"):]
    packet_id, payload = expected_tail[:2], expected_tail[2:]
    assert payload == b"ack me"
    raw.close()  # no PUBACK

    again = RawClient(*broker.addr)
    try:
        again.send(connect_packet("redeliver", level=4, clean=False))
        assert again.read_packet() == (0x20, b"\x01\x00"), "expected CONNACK with session present"
        first, body = again.read_packet()
        assert first == 0x3A, f"redelivery: {first:#x} (expected QoS 1 with DUP=1)"
        assert body == b"\x00\x04rd/t" + packet_id + b"ack me", "redelivery must keep the packet identifier"
        again.send(packet(0x40, packet_id))  # PUBACK
        again.send(packet(0xE0, b""))
        assert again.read_until_closed() == []
    finally:
        again.close()


def test_clean_session_does_not_keep_subscriptions(clients):
    first = clients("cleaner", clean_session=True)
    first.connect_ok()
    assert first.subscribe("cs/t", 1) == [1]
    first.disconnect()
    pub = clients("pub")
    pub.connect_ok()
    pub.publish("cs/t", b"lost", qos=1)
    again = clients("cleaner", clean_session=False)
    assert again.connect_ok().session_present is False
    assert again.subscribe("cs/#", 1) == [1]
    pub.publish("cs/marker", b"marker", qos=1)
    again.expect("cs/marker", b"marker")


def test_takeover_by_same_client_id(clients):
    first = clients("dup")
    first.connect_ok()
    assert first.subscribe("take/t", 1) == [1]
    second = clients("dup")
    second.connect_ok()
    info = first.wait_disconnected()
    assert info.reason_code != 0, "the first connection must be closed by the broker, not by itself"
    assert second.subscribe("take/t", 1) == [1]
    second.publish("take/t", b"to the new connection", qos=1)
    second.expect("take/t", b"to the new connection", qos=1)
    assert first.messages.empty()


def test_takeover_of_clean_session_does_not_resume_it(clients):
    """A CleanSession=1 session lasts as long as its connection and is never reused [MQTT-3.1.2-6],
    even when a CleanSession=0 connection with the same id takes the connection over."""
    first = clients("tko", clean_session=True)
    first.connect_ok()
    assert first.subscribe("tko/a", 1) == [1]
    second = clients("tko", clean_session=False)
    assert second.connect_ok().session_present is False, "session_present=1 for a session that was clean"
    first.wait_disconnected()
    second.publish("tko/a", b"to the old subscription", qos=1)
    assert second.subscribe("tko/marker", 1) == [1]
    second.publish("tko/marker", b"marker", qos=1)
    second.expect("tko/marker", b"marker")


def test_reconnect_right_after_clean_disconnect(broker):
    reconnect_race(broker, level=4)


# -- $SYS ---------------------------------------------------------------------------------------------------


def test_sys_topics_published(clients):
    c = clients("sys")
    c.connect_ok()
    assert c.subscribe("$SYS/#", 0) == [0]
    # Retained values come at once, live ones every --sys-interval (1 s): wait for live ones, so
    # clients/connected counts this client.
    uptime = c.wait_for(lambda m: m.topic == "$SYS/broker/uptime" and not m.retain, timeout=4,
                        what="live $SYS/broker/uptime").payload.decode()
    words = uptime.split()
    assert words and words[0].isdigit(), f"uptime payload {uptime!r}"
    connected = c.wait_for(lambda m: m.topic == "$SYS/broker/clients/connected" and not m.retain, timeout=4,
                           what="live $SYS/broker/clients/connected").payload
    assert connected == b"1", f"clients/connected is {connected!r} with exactly one client connected"


def test_hash_wildcard_does_not_match_sys_topics(clients):
    everything = clients("everything")
    everything.connect_ok()
    assert everything.subscribe("#", 0) == [0]
    ticker = clients("ticker")
    ticker.connect_ok()
    assert ticker.subscribe("$SYS/broker/uptime", 0) == [0]
    # Two uptime messages to `ticker` mean at least one $SYS publication happened after `#` was
    # subscribed (the first may be the retained one).
    ticker.get(timeout=4)
    ticker.get(timeout=4)
    ticker.publish("plain/marker", b"marker", qos=1)
    m = everything.get()
    assert not m.topic.startswith("$"), f"'#' delivered {m.topic!r} [MQTT-4.7.2-1]"
    assert (m.topic, m.payload) == ("plain/marker", b"marker")


def test_plus_wildcard_does_not_match_sys_topics(clients):
    c = clients("plus")
    c.connect_ok()
    assert c.subscribe("+/broker/uptime", 0) == [0]
    ticker = clients("ticker")
    ticker.connect_ok()
    assert ticker.subscribe("$SYS/broker/uptime", 0) == [0]
    ticker.get(timeout=4)
    ticker.get(timeout=4)
    ticker.publish("x/broker/uptime", b"marker", qos=1)
    c.expect("x/broker/uptime", b"marker")


# -- MQTT 3.1 ------------------------------------------------------------------------------------------------


def test_mqtt31_pubsub(clients):
    sub = clients("v31-sub", protocol=mqtt.MQTTv31)
    assert sub.connect_ok().session_present is False
    assert sub.subscribe("v31/#", 2) == [2]
    pub = clients("v31-pub", protocol=mqtt.MQTTv31)
    pub.connect_ok()
    for qos in (0, 1, 2):
        pub.publish("v31/t", f"hello-{qos}".encode(), qos=qos)
        sub.expect("v31/t", f"hello-{qos}".encode(), qos=qos)


def test_mqtt31_and_311_interoperate(clients):
    sub = clients("v311-sub")
    sub.connect_ok()
    assert sub.subscribe("mix/t", 1) == [1]
    pub = clients("v31-pub", protocol=mqtt.MQTTv31)
    pub.connect_ok()
    pub.publish("mix/t", b"from 3.1", qos=1)
    sub.expect("mix/t", b"from 3.1", qos=1)


def test_mqtt31_raw_connack(broker):
    raw = RawClient(*broker.addr)
    try:
        raw.send(connect_packet("raw-v31", level=3))
        assert raw.read_packet() == (0x20, b"\x00\x00")
    finally:
        raw.close()


# -- CONNACK return codes ------------------------------------------------------------------------------------


def test_empty_client_id_without_clean_session_is_rejected(broker):
    # paho refuses to send this, so it goes on a raw socket.
    raw = RawClient(*broker.addr)
    try:
        raw.send(connect_packet("", level=4, clean=False))
        packets = raw.read_until_closed()
        assert packets == [(0x20, b"\x00\x02")], "expected CONNACK 0x02 (identifier rejected) then close"
    finally:
        raw.close()


def test_empty_client_id_with_clean_session_is_accepted(clients, broker):
    raw = RawClient(*broker.addr)
    try:
        raw.send(connect_packet("", level=4, clean=True))
        assert raw.read_packet() == (0x20, b"\x00\x00")
    finally:
        raw.close()
    c = clients("")  # paho with an empty id and clean session
    c.connect_ok()
    assert c.subscribe("anon/t", 1) == [1]
    c.publish("anon/t", b"anon", qos=1)
    c.expect("anon/t", b"anon")


def test_mqtt31_empty_client_id_is_rejected(broker):
    raw = RawClient(*broker.addr)
    try:
        raw.send(connect_packet("", level=3, clean=True))
        assert raw.read_until_closed() == [(0x20, b"\x00\x02")]
    finally:
        raw.close()


def test_unsupported_protocol_level_is_rejected(broker):
    raw = RawClient(*broker.addr)
    try:
        raw.send(connect_packet("future", level=6))
        assert raw.read_until_closed() == [(0x20, b"\x00\x01")], "expected CONNACK 0x01 then close"
    finally:
        raw.close()
