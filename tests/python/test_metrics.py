"""The Prometheus exposition of a running node, read by Prometheus's own Python parser of the OpenMetrics
format it is served in (``prometheus_client.openmetrics.parser``, which rejects a malformed exposition),
with real MQTT traffic behind the numbers."""

import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def scrape(broker) -> dict:
    with urllib.request.urlopen(f"http://{broker.api_addr()}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(families: dict, name: str, **labels) -> float:
    for family in families.values():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise AssertionError(f"no sample {name} {labels} in {sorted(families)}")


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
