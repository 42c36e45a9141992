"""The Prometheus exposition of a running node, read by Prometheus's own Python parser of the OpenMetrics
format it is served in (``prometheus_client.openmetrics.parser``, which rejects a malformed exposition),
with real MQTT traffic behind the numbers."""

from mqtt_support import sample, scrape


def test_the_exposition_parses_and_counts_what_clients_did(broker, clients):
    sub = clients("metrics-sub")
    sub.connect_ok()
    assert sub.subscribe("m/#", 1) == [1]
    pub = clients("metrics-pub")
    pub.connect_ok()
    for i in range(5):
        pub.publish("m/x", f"{i}".encode(), qos=1)
    pub.publish("m/kept", b"r", qos=0, retain=True)
    for i in range(5):
        sub.expect("m/x", f"{i}".encode(), qos=1)
    sub.expect("m/kept", b"r", qos=0)

    families = scrape(broker)
    assert sample(families, "ractmq_connections") == 2
    assert sample(families, "ractmq_listener_connections", listener="mqtt:tcp") == 2
    assert sample(families, "ractmq_messages_received_total") >= 6
    assert sample(families, "ractmq_messages_routed_total", qos="1") >= 5
    assert sample(families, "ractmq_messages_delivered_total", qos="1") == 5
    assert sample(families, "ractmq_messages_delivered_total", qos="0") >= 1
    assert sample(families, "ractmq_messages_dropped_total", reason="queue_full") == 0
    assert sample(families, "ractmq_retained_messages") >= 1
    assert sample(families, "ractmq_actor_restarts_total", kind="session") == 0
    assert sample(families, "ractmq_subscriptions") == 1
    assert families["ractmq_route_latency_seconds"].type == "histogram"
    assert sample(families, "ractmq_route_latency_seconds_count") >= 6
    assert sample(families, "ractmq_route_latency_seconds_bucket", le="+Inf") == sample(
        families, "ractmq_route_latency_seconds_count")
    assert families["ractmq_messages_routed"].type == "counter"
