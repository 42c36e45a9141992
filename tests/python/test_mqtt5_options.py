"""MQTT 5.0 packet identifiers and quotas against the running broker: acknowledgements for unknown packet ids
(0x92) and what a client gets beyond its subscription quota or its outgoing queue (0x97). The other 5.0 options,
limits and capability flags are in test_mqtt5_features.py."""

from __future__ import annotations

import struct

from mqtt_support import RawClient, connect_packet, mqtt, packet, subscribe_packet

V5 = mqtt.MQTTv5


def v5(clients, client_id: str, **kwargs):
    return clients(client_id, protocol=V5, **kwargs)


def raw_v5(b, client_id: str, properties: bytes = b"") -> RawClient:
    raw = RawClient(*b.addr)
    raw.send(connect_packet(client_id, level=5, v5_properties=properties))
    first, body = raw.read_packet()
    assert first == 0x20 and body[1] == 0, f"CONNACK {first:#x} {body!r}"
    return raw


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
    b = broker_factory("--max-queue", "10", "--queue-overflow", "disconnect", "--stall-timeout-ms", "200")
    stalled = raw_v5(b, "stalled")
    try:
        stalled.send(subscribe_packet(1, [("flood/t", 0)], v5=True))
        assert stalled.read_packet()[0] == 0x90
        pub = v5(clients, "flooder", target=b)
        pub.connect_ok()
        # The stalled client reads nothing: its socket buffers, then its outgoing queue of 10, fill up; it takes
        # nothing for the stall timeout, and its policy disconnects it.
        for _ in range(400):
            pub.publish("flood/t", b"x" * 65000, qos=0)
        packets = stalled.read_until_closed()
        assert (packets[-1][0], packets[-1][1][0]) == (0xE0, 0x97), "DISCONNECT Quota exceeded, after the backlog"
    finally:
        stalled.close()
