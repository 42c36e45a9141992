#!/usr/bin/env python3
"""Why this exists: turns the raw results of benches/run.sh (one JSON line per run) into what people read:
a markdown table of medians with ractmq/peer ratios and the targets, the cross-node figures of a 2-node ractmq
cluster beside ractmq's single-node ones, the stuck-subscriber runs, durable ractmq (persistent subscribers) beside
ractmq --durability memory and Mosquitto with persistence, ractmq's MQTT egress bridge beside Mosquitto's, an idle
bridge's cost beside ractmq without one, a table of every run's loss and duplicates, a JSON summary and a PNG
chart, all in the results folder. `--line` prints a one-line progress
summary of a single run instead.

A figure is a result only when every round of it was clean: nothing lost, duplicated, misrouted or garbled, no
stall, error or timeout, the broker alive. Otherwise its cell says what went wrong ("lossy: ..." with each
lossy round's loss) instead of a number, and no ratio or target is computed from it.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

PEERS = ["mosquitto", "rumqttd", "ractmq"]
# The peers of the durable-* scenarios: ractmq on its defaults (durable, disk), the same with --durability memory,
# Mosquitto with persistence true.
DURABLE_PEERS = ["ractmq", "ractmq-mem", "mosquitto-persist"]
ALL_PEERS = PEERS + DURABLE_PEERS[1:]
DURABLE = ["durable-fanin-q1"]
# The durability issue's targets: durable ractmq / peer >= value, messages/s.
DURABLE_TARGETS = [("ractmq-mem", 1 / 2), ("mosquitto-persist", 2.0)]
DURABLE_METRICS = [("msgs_per_s", "messages/s delivered", True),
                   ("broker_cpu_s_per_million", "broker CPU s per million delivered", False)]

# (scenario, metric key, label, higher is better)
THROUGHPUT = ["fanin-q0", "fanin-q1", "fanout-q0", "p2p-q0", "p2p-q1"]
METRICS = (
    [(s, "msgs_per_s", "messages/s delivered", True) for s in THROUGHPUT]
    + [
        ("latency-q0", "p50", "latency p50 (µs)", False),
        ("latency-q0", "p99", "latency p99 (µs)", False),
        ("latency-q0", "max", "latency max (µs)", False),
        ("conns", "established", "idle connections held", True),
        ("conns", "rss_bytes_per_conn", "broker RSS per connection (bytes)", False),
        ("conns", "connects_per_s", "connects/s", True),
    ]
    + [(s, "broker_cpu_s_per_million", "broker CPU s per million delivered", False) for s in THROUGHPUT]
)
# The metrics whose cells also spell out the loss and duplicates of every round.
DETAILED = {"msgs_per_s", "p50", "established"}

STUCK = ["stuck-q1", "stuck-q0"]

# Cross-node scenarios (ractmq only: publishers on node n1, subscribers on node n2) and the single-node scenario
# of the same shape they are compared with: (cross-node scenario, single-node scenario, metric key, label, higher
# is better).
CLUSTER_PAIRS = [("cluster-p2p-q0", "p2p-q0"), ("cluster-p2p-q1", "p2p-q1"), ("cluster-latency-q0", "latency-q0")]
# ractmq with an ACL of 10,000 rules with placeholders, beside the same load without one.
ACL_PAIRS = [("acl-fanin-q0", "fanin-q0"), ("acl-fanin-q1", "fanin-q1")]
# MQTT egress bridges: publishers on the broker under test, which bridges the load to a remote Mosquitto where the
# subscriber is; ractmq's bridge against Mosquitto's. The bridge issue's targets: ractmq's bridge carries at least
# this many messages/s, and at least as many as Mosquitto's bridge in the same run.
BRIDGE = ["bridge-q0", "bridge-q1"]
BRIDGE_PEERS = ["mosquitto", "ractmq"]
BRIDGE_TARGETS = {"bridge-q0": 100_000, "bridge-q1": 30_000}
BRIDGE_METRICS = [("msgs_per_s", "messages/s delivered at the remote", True),
                  ("broker_cpu_s_per_million", "broker CPU s per million (the bridging broker)", False)]
# ractmq with a connected bridge whose filter matches none of the load, beside the same load without a bridge: "an
# idle bridge costs the publish path nothing measurable", read as with / without >= IDLE_BRIDGE_MIN.
IDLE_BRIDGE_PAIRS = [("idle-bridge-fanin-q1", "fanin-q1")]
IDLE_BRIDGE_MIN = 0.95
# ractmq with 1,000 rules on topics of their own the load does not match, beside the same load without rules: the
# rule issue's target, with / without >= RULES_MIN.
RULES_PAIRS = [("rules-fanin-q0", "fanin-q0"), ("rules-fanin-q1", "fanin-q1")]
RULES_MIN = 0.9
PAIR_METRICS = [("msgs_per_s", "messages/s delivered", True),
                ("broker_cpu_s_per_million", "broker CPU s per million delivered", False)]
CLUSTER_METRICS = [
    (cross, single, key, label, higher)
    for cross, single in CLUSTER_PAIRS
    for key, label, higher in (
        [("p50", "latency p50 (µs)", False), ("p99", "latency p99 (µs)", False), ("max", "latency max (µs)", False)]
        if single.startswith("latency")
        else [
            ("msgs_per_s", "messages/s delivered", True),
            ("broker_cpu_s_per_million", "broker CPU s per million delivered (both nodes)", False),
        ]
    )
]

# The targets: (peer, kind, value). kind "ratio>=": ractmq/peer >= value; "ratio<=": ractmq/peer <= value;
# "abs<=": ractmq's own value <= value.
TARGETS = {
    ("fanin-q0", "msgs_per_s"): [("rumqttd", "ratio>=", 1.5), ("mosquitto", "ratio>=", 2.0)],
    ("fanin-q1", "msgs_per_s"): [("rumqttd", "ratio>=", 1.5), ("mosquitto", "ratio>=", 2.0)],
    ("p2p-q0", "msgs_per_s"): [("rumqttd", "ratio>=", 1.5), ("mosquitto", "ratio>=", 2.0)],
    ("p2p-q1", "msgs_per_s"): [("rumqttd", "ratio>=", 1.5), ("mosquitto", "ratio>=", 2.0)],
    # The flow-control issue's target for fan-out.
    ("fanout-q0", "msgs_per_s"): [("rumqttd", "ratio>=", 1.2), ("mosquitto", "ratio>=", 2.0)],
    ("latency-q0", "p99"): [("mosquitto", "ratio<=", 1.0)],
    ("conns", "rss_bytes_per_conn"): [(None, "abs<=", 4096)],
    ("conns", "connects_per_s"): [("mosquitto", "ratio>=", 1.0)],
}


def metric_of(result, key):
    if result is None:
        return None
    if key in ("p50", "p99", "max", "p999", "mean"):
        return (result.get("latency_us") or {}).get(key)
    return result.get(key)


def fmt(v, key=""):
    if v is None:
        return "—"
    if isinstance(v, float) and v != v:
        return "—"
    if key == "broker_cpu_s_per_million":
        return f"{v:.2f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def pct(v):
    if v is None:
        return "—"
    if v == 0:
        return "0%"
    return f"{v:.3g}%"


def count(v):
    return f"{v:,}" if isinstance(v, int) else "—"


def mib(kib):
    return "—" if kib is None else f"{kib / 1024:.1f}"


def lost_pct(r):
    if r.get("lost_pct") is not None:
        return r["lost_pct"]
    expected = r.get("expected") or 0
    return (r.get("lost") or 0) * 100.0 / expected if expected else 0.0


# How a run's state reads in the tables.
SHOWN = {"clean": "clean", "lossy": "lossy", "failed": "not ok"}


def is_lossy(r):
    return any((r.get(k) or 0) > 0 for k in ("lost", "dups", "misrouted", "garbled"))


def run_state(rec):
    """'clean', 'lossy' (lost, duplicated, misrouted or garbled messages) or 'failed' (no result, a stall,
    an error, a timeout, the broker died)."""
    r = rec.get("result")
    if not r:
        return "failed"
    if is_lossy(r):
        return "lossy"
    if not r.get("ok", False) or not rec.get("broker_alive", True):
        return "failed"
    return "clean"


def why_failed(rec):
    r = rec.get("result") or {}
    if not rec.get("result"):
        return rec.get("error") or f"no result (loadgen exit {rec.get('loadgen_exit')})"
    if not rec.get("broker_alive", True):
        return "broker died"
    if r.get("scenario") == "conns":
        return f"held {r.get('established')}/{r.get('requested')}, {r.get('alive_after_ping')} answered ping"
    if r.get("timed_out"):
        return "timed out"
    if r.get("stalls"):
        return "publisher stalled"
    return "errors"


def loss_text(rec):
    r = rec.get("result") or {}
    s = f"{pct(lost_pct(r))} lost, {r.get('dups') or 0} dups"
    if r.get("misrouted"):
        s += f", {r['misrouted']} misrouted"
    return s


class Cell:
    """One scenario and peer over its rounds: the median of `key` when every round was clean."""

    def __init__(self, recs, scenario, peer, key):
        self.runs = sorted((r for r in recs if r["scenario"] == scenario and r["peer"] == peer),
                           key=lambda r: r["round"])
        self.key = key
        self.states = [run_state(r) for r in self.runs]
        vals = [metric_of(r.get("result"), key) for r in self.runs]
        vals = [v for v in vals if v is not None and v == v]
        self.clean = bool(self.runs) and all(s == "clean" for s in self.states) and len(vals) == len(self.runs)
        self.value = statistics.median(vals) if self.clean else None

    def __bool__(self):
        return bool(self.runs)

    def bad(self):
        """'lossy' or 'not ok' when not clean."""
        return "lossy" if "lossy" in self.states else "not ok"

    def text(self, detailed):
        n = len(self.runs)
        lossy = [r for r, s in zip(self.runs, self.states) if s == "lossy"]
        failed = [r for r, s in zip(self.runs, self.states) if s == "failed"]
        if self.clean:
            if not detailed:
                return fmt(self.value, self.key)
            if self.key == "established":
                return f"{fmt(self.value, self.key)} (all held and answering in {n}/{n} rounds)"
            return f"{fmt(self.value, self.key)} (0 lost, 0 dups; lossy rounds 0/{n})"
        if not detailed:
            return f"— ({self.bad()})"
        parts = []
        if lossy:
            parts.append(f"lossy: {len(lossy)}/{n} rounds, " + "; ".join(loss_text(r) for r in lossy))
        if failed:
            parts.append(f"not ok: {len(failed)}/{n} rounds, " + "; ".join(sorted({why_failed(r) for r in failed})))
        return " · ".join(parts)


def line_summary(rec):
    r = rec.get("result") or {}
    s = f"r{rec['round']} {rec['scenario']:<18} {rec['peer']:<17}"
    if not rec.get("result"):
        return s + f" FAILED (loadgen exit {rec.get('loadgen_exit')}, broker alive {rec.get('broker_alive')})"
    if rec["scenario"] == "conns":
        s += (f" {r.get('established')}/{r.get('requested')} conns, {fmt(r.get('connects_per_s'))}/s,"
              f" {fmt(r.get('rss_bytes_per_conn'))} B/conn, alive after ping {r.get('alive_after_ping')}")
    else:
        s += f" {fmt(r.get('msgs_per_s'))} msg/s"
        if run_state(rec) != "clean":
            s += " (not a result)"
        if r.get("latency_us"):
            lat = r["latency_us"]
            s += f", p50 {fmt(lat.get('p50'))} µs p99 {fmt(lat.get('p99'))} µs max {fmt(lat.get('max'))} µs"
        s += (f", cpu/M {fmt(r.get('broker_cpu_s_per_million'), 'broker_cpu_s_per_million')} s,"
              f" sent {r.get('sent')} lost {r.get('lost')} ({pct(lost_pct(r))}) dups {r.get('dups')}"
              f" reordered {r.get('reordered')}, subs with loss {r.get('subs_with_loss')}")
        if r.get("pub_max_gap_s") is not None:
            s += f", publisher longest wait {fmt(r.get('pub_max_gap_s'))} s"
        if r.get("stuck_subscribers"):
            s += (f", publish all {fmt(r.get('publish_s'))} s, RSS peak {mib(r.get('broker_rss_kib_max'))} MiB"
                  f" end {mib(r.get('broker_rss_kib_after'))} MiB, stuck got {r.get('stuck_received')}"
                  f"/{r.get('stuck_expected')} after release, closed by broker {r.get('stuck_closed_by_broker')}")
    state = run_state(rec)
    if state != "clean":
        s += f"  {SHOWN[state].upper()}"
    if r.get("errors"):
        s += f"  errors: {r['errors'][:2]}"
    if not rec.get("broker_alive", True):
        s += "  BROKER DIED"
    return s


def load(raw):
    recs = []
    for line in Path(raw).read_text().splitlines():
        line = line.strip()
        if line:
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError as e:
                print(f"report.py: skipping a bad line: {e}", file=sys.stderr)
    return recs


def summarize(recs):
    """The peers present and a Cell per (scenario, key, peer) measured."""
    peers = [p for p in PEERS if any(r["peer"] == p for r in recs)]
    cells = {}
    measured = [(s, k) for s, k, _, _ in METRICS] + [(c, k) for c, _, k, _, _ in CLUSTER_METRICS]
    measured += [(s, k) for c, s, k, _, _ in CLUSTER_METRICS]
    measured += [(a, k) for a, _ in ACL_PAIRS + IDLE_BRIDGE_PAIRS + RULES_PAIRS for k, _, _ in PAIR_METRICS]
    measured += [(s, k) for _, s in IDLE_BRIDGE_PAIRS + RULES_PAIRS for k, _, _ in PAIR_METRICS]
    measured += [(b, k) for b in BRIDGE for k, _, _ in BRIDGE_METRICS]
    for scenario, key in measured:
        for peer in peers:
            cell = Cell(recs, scenario, peer, key)
            if cell:
                cells.setdefault(scenario, {}).setdefault(key, {})[peer] = cell
    for scenario in DURABLE:
        for key, _, _ in DURABLE_METRICS:
            for peer in DURABLE_PEERS:
                cell = Cell(recs, scenario, peer, key)
                if cell:
                    cells.setdefault(scenario, {}).setdefault(key, {})[peer] = cell
    return peers, cells


def value(cells, scenario, key, peer):
    c = cells.get(scenario, {}).get(key, {}).get(peer)
    return c.value if c else None


def ratio(cells, scenario, key, peer):
    a, b = value(cells, scenario, key, "ractmq"), value(cells, scenario, key, peer)
    if a is None or not b:
        return None
    return a / b


def ratio_text(cells, scenario, key, peer):
    r = ratio(cells, scenario, key, peer)
    if r is not None:
        return fmt(r)
    why = [f"{p} {c.bad()}" for p, c in cells.get(scenario, {}).get(key, {}).items()
           if p in ("ractmq", peer) and not c.clean]
    return f"— ({', '.join(why)})" if why else "—"


def target_text(cells, scenario, key):
    out = []
    mine = cells.get(scenario, {}).get(key, {}).get("ractmq")
    for peer, kind, val in TARGETS.get((scenario, key), []):
        if mine is not None and not mine.clean:
            verdict = f"❌ (ractmq {mine.bad()})"
        elif kind == "abs<=":
            v = value(cells, scenario, key, "ractmq")
            verdict = "✅" if v is not None and v <= val else "❌"
        else:
            theirs = cells.get(scenario, {}).get(key, {}).get(peer)
            r = ratio(cells, scenario, key, peer)
            if theirs is not None and not theirs.clean:
                verdict = f"n/a ({peer} {theirs.bad()})"
            else:
                verdict = "✅" if r is not None and (r >= val if kind == "ratio>=" else r <= val) else "❌"
        if kind == "abs<=":
            out.append(f"≤ {val:g} {verdict}")
        else:
            out.append(f"{'≥' if kind == 'ratio>=' else '≤'} {val:g}× {peer} {verdict}")
    return "; ".join(out)


def durable_ratio(cells, scenario, key, peer):
    """Durable ractmq / peer, from clean cells only."""
    m = cells.get(scenario, {}).get(key, {})
    a, b = m.get("ractmq"), m.get(peer)
    if a is None or b is None or a.value is None or not b.value:
        return None
    return a.value / b.value


def durable_ratio_text(cells, scenario, key, peer):
    r = durable_ratio(cells, scenario, key, peer)
    if r is not None:
        return fmt(r)
    m = cells.get(scenario, {}).get(key, {})
    why = [f"{p} {'did not run' if p not in m else m[p].bad()}" for p in ("ractmq", peer)
           if p not in m or not m[p].clean]
    return f"— ({', '.join(why)})"


def durable_target_text(cells, scenario):
    out = []
    m = cells.get(scenario, {}).get("msgs_per_s", {})
    for peer, val in DURABLE_TARGETS:
        mine, theirs = m.get("ractmq"), m.get(peer)
        r = durable_ratio(cells, scenario, "msgs_per_s", peer)
        if mine is None:
            verdict = "n/a (ractmq did not run)"
        elif not mine.clean:
            verdict = f"❌ (ractmq {mine.bad()})"
        elif theirs is None:
            verdict = f"n/a ({peer} did not run)"
        elif not theirs.clean:
            verdict = f"n/a ({peer} {theirs.bad()})"
        else:
            verdict = "✅" if r is not None and r >= val else "❌"
        out.append(f"≥ {val:g}× {peer} {verdict}")
    return "; ".join(out)


def durable_markdown(cells, mode):
    """Durable ractmq (persistent subscribers, every copy committed before the PUBACK) beside ractmq in memory
    and Mosquitto with persistence."""
    rows = []
    for scenario in DURABLE:
        for key, label, higher in DURABLE_METRICS:
            m = cells.get(scenario, {}).get(key)
            if not m:
                continue
            detailed = key in DETAILED
            row = [scenario, f"{label} {'↑' if higher else '↓'}"]
            row += [m[p].text(detailed) if p in m else "—" for p in DURABLE_PEERS]
            row += [durable_ratio_text(cells, scenario, key, p) for p in DURABLE_PEERS[1:]]
            row.append(durable_target_text(cells, scenario) if key == "msgs_per_s" else "")
            rows.append("| " + " | ".join(row) + " |")
    if not rows:
        return []
    return [
        "## Durability (persistent subscribers)",
        "",
        "4 publishers -> 1 subscriber at QoS 1 as fanin-q1, but the subscriber has a persistent session (clean "
        "session 0), so the broker keeps every copy for it. ractmq runs on its defaults (durable: a PUBACK only once "
        "the copies are committed to its data dir, a fresh one per run), ractmq-mem with --durability memory, "
        "mosquitto-persist is Mosquitto with persistence true (it writes its database every autosave_interval, "
        "30 minutes by default, and at exit: its PUBACKs wait for no disk). Ratios are durable ractmq / peer; targets "
        f"from the durability issue. Mode: {mode}; medians over rounds.",
        "",
        "| scenario | metric | ractmq (durable) | ractmq --durability memory | Mosquitto, persistence true | "
        "durable / memory | durable / mosquitto-persist | target |",
        "|" + "---|" * 8,
    ] + rows + [""]


def cross_node_rows(cells):
    """(cross-node scenario, single-node scenario, key, label, higher, single cell, cross cell, cross/single)
    for every cross-node metric measured."""
    rows = []
    for cross, single, key, label, higher in CLUSTER_METRICS:
        c = cells.get(cross, {}).get(key, {}).get("ractmq")
        if c is None:
            continue
        s = cells.get(single, {}).get(key, {}).get("ractmq")
        r = c.value / s.value if s is not None and c.value is not None and s.value else None
        rows.append((cross, single, key, label, higher, s, c, r))
    return rows


def cross_node_markdown(cells, mode):
    rows = cross_node_rows(cells)
    if not rows:
        return []
    lines = [
        "## Cross-node (ractmq cluster of 2 on one machine)",
        "",
        "Two ractmq nodes on this machine (n1 and n2, joined over loopback); publishers connect to n1, subscribers "
        "to n2, so every message crosses between the nodes. Each is set beside ractmq's single-node run of the same "
        f"shape (same load, one node). Mode: {mode}; medians over rounds. Broker CPU is the sum of both nodes. "
        "Cross / single: above 1 is better for rows marked ↑, below 1 for rows marked ↓. Every run's loss is in "
        "the table of every run below.",
        "",
        "| cross-node scenario | metric | single-node ractmq (scenario) | cross-node ractmq, n1 → n2 | "
        "cross-node / single-node |",
        "|---|---|---|---|---|",
    ]
    for cross, single, key, label, higher, s, c, r in rows:
        detailed = key in DETAILED
        single_text = s.text(detailed) if s is not None else "—"
        lines.append(f"| {cross} | {label} {'↑' if higher else '↓'} | {single_text} ({single}) | "
                     f"{c.text(detailed)} | {fmt(r)} |")
    return lines + [""]


def acl_markdown(cells, mode):
    """ractmq with 10,000 ACL rules beside ractmq without: the cost of authorization on the hot path."""
    rows = []
    for with_acl, without in ACL_PAIRS:
        for key, label, higher in (("msgs_per_s", "messages/s delivered", True),
                                   ("broker_cpu_s_per_million", "broker CPU s per million delivered", False)):
            a = cells.get(with_acl, {}).get(key, {}).get("ractmq")
            b = cells.get(without, {}).get(key, {}).get("ractmq")
            if a is None or b is None:
                continue
            r = a.value / b.value if a.value is not None and b.value else None
            rows.append(f"| {with_acl} | {label} {'↑' if higher else '↓'} | {b.text(False)} | {a.text(False)} | "
                        f"{fmt(r)} |")
    if not rows:
        return []
    return [
        "## Authorization cost (ractmq, 10,000 ACL rules with placeholders)",
        "",
        "ractmq with `--acl-file` of 10,000 native rules (9,999 `devices/%c/rN/#` rules the load does not match, then "
        "one allowing everything, so every PUBLISH and SUBSCRIBE is checked against all of them), beside the same "
        f"scenario without an ACL. Target: at most 10% fewer messages/s. Mode: {mode}; medians over rounds.",
        "",
        "| scenario | metric | without ACL | with 10,000 rules | with / without |",
        "|---|---|---|---|---|",
    ] + rows + [""]


def rounds_text(cell, key):
    """Every round's figure, in round order, e.g. "512,000 / 498,000 / 530,000"; a round that was not clean shows
    what it was ("lossy", "not ok") instead of a figure."""
    return " / ".join(fmt(metric_of(r.get("result"), key), key) if st == "clean" else SHOWN[st]
                      for r, st in zip(cell.runs, cell.states))


def bridge_target_text(cells, scenario):
    """The bridge issue's two targets for ractmq's bridge: an absolute rate and >= 1x Mosquitto's bridge."""
    m = cells.get(scenario, {}).get("msgs_per_s", {})
    mine, theirs = m.get("ractmq"), m.get("mosquitto")
    floor = BRIDGE_TARGETS[scenario]
    if mine is None:
        return "n/a (ractmq did not run)"
    if not mine.clean:
        return f"≥ {floor:,} msg/s ❌ (ractmq {mine.bad()}); ≥ 1× mosquitto ❌ (ractmq {mine.bad()})"
    out = [f"≥ {floor:,} msg/s {'✅' if mine.value >= floor else '❌'}"]
    if theirs is None:
        out.append("≥ 1× mosquitto n/a (mosquitto did not run)")
    elif not theirs.clean:
        out.append(f"≥ 1× mosquitto n/a (mosquitto {theirs.bad()})")
    else:
        out.append(f"≥ 1× mosquitto {'✅' if theirs.value and mine.value / theirs.value >= 1 else '❌'}")
    return "; ".join(out)


def bridge_markdown(cells, mode):
    """ractmq's MQTT egress bridge beside Mosquitto's, each on its defaults, both to the same remote Mosquitto."""
    rows = []
    for scenario in BRIDGE:
        for key, label, higher in BRIDGE_METRICS:
            m = cells.get(scenario, {}).get(key)
            if not m:
                continue
            row = [scenario, f"{label} {'↑' if higher else '↓'}"]
            row += [m[p].text(key in DETAILED) if p in m else "— (did not run)" for p in BRIDGE_PEERS]
            row += [" ; ".join(f"{p}: {rounds_text(m[p], key)}" for p in BRIDGE_PEERS if p in m)]
            row.append(ratio_text(cells, scenario, key, "mosquitto"))
            row.append(bridge_target_text(cells, scenario) if key == "msgs_per_s" else "")
            rows.append("| " + " | ".join(row) + " |")
    if not rows:
        return []
    return [
        "## MQTT egress bridge (ractmq's bridge vs Mosquitto's)",
        "",
        "4 publishers on the broker under test, which bridges `bench/#` out to a remote Mosquitto (on its defaults, "
        "its own port), where the 1 subscriber is: every message crosses the bridge. ractmq runs on its defaults "
        "plus only a `[[bridges.mqtt]]` with name, server, forward and qos; Mosquitto on its defaults plus only a "
        "`connection` section with address and `topic bench/# out QOS` (benches/README.md). Broker CPU is the "
        "bridging broker's alone, not the remote's. A figure is shown only when every round lost and duplicated "
        "nothing; loss at the remote counts as loss (the broker logs say which broker dropped). Ratio = ractmq's "
        f"bridge / Mosquitto's bridge. Targets from the bridge issue. Mode: {mode}; medians over rounds.",
        "",
        "| scenario | metric | Mosquitto's bridge | ractmq's bridge | every round | ractmq / mosquitto | target |",
        "|" + "---|" * 7,
    ] + rows + [""]


def overhead_rows(cells, pairs, minimum):
    """Rows of ractmq with something the load does not use, beside ractmq without it: with / without, the
    target with / without >= minimum, and every round."""
    rows = []
    for with_it, without in pairs:
        for key, label, higher in PAIR_METRICS:
            a = cells.get(with_it, {}).get(key, {}).get("ractmq")
            b = cells.get(without, {}).get(key, {}).get("ractmq")
            if a is None or b is None:
                continue
            r = a.value / b.value if a.value is not None and b.value else None
            if key != "msgs_per_s":
                target = ""
            elif not a.clean or not b.clean:
                target = f"≥ {minimum:g} ❌ (not clean)" if not a.clean else "n/a (plain run not clean)"
            else:
                target = f"≥ {minimum:g} {'✅' if r is not None and r >= minimum else '❌'}"
            rows.append(f"| {with_it} | {label} {'↑' if higher else '↓'} | {b.text(key in DETAILED)} | "
                        f"{a.text(key in DETAILED)} | {rounds_text(b, key)} ; {rounds_text(a, key)} | {fmt(r)} | "
                        f"{target} |")
    return rows


def rules_markdown(cells, mode):
    """ractmq with 1,000 rules the load does not match, beside ractmq without rules."""
    rows = overhead_rows(cells, RULES_PAIRS, RULES_MIN)
    if not rows:
        return []
    return [
        "## Rules cost (ractmq, 1,000 rules the load does not match)",
        "",
        "ractmq on its defaults plus 1,000 `[[rules]]`, each on a filter of its own (`site/N/+/telemetry`) with a JSON "
        "filter and a republish, beside the same scenario without rules. Rules are found through a topic trie, so a "
        "message no rule matches costs one lookup in it. The rule issue's target: with / without "
        f"≥ {RULES_MIN:g}. Mode: {mode}; medians over rounds.",
        "",
        "| scenario | metric | without rules | with 1,000 rules | every round (without ; with) | with / without | "
        "target |",
        "|" + "---|" * 7,
    ] + rows + [""]


def idle_bridge_markdown(cells, mode):
    """ractmq with a connected bridge that forwards none of the load, beside ractmq without a bridge."""
    rows = overhead_rows(cells, IDLE_BRIDGE_PAIRS, IDLE_BRIDGE_MIN)
    if not rows:
        return []
    return [
        "## Idle bridge cost (ractmq)",
        "",
        "ractmq on its defaults plus a `[[bridges.mqtt]]` connected to a remote Mosquitto whose forward filter "
        "(`elsewhere/#`) matches none of the load, beside the same scenario without a bridge (and no remote). "
        "The bridge issue asks that an idle bridge cost the publish path nothing measurable; the target column reads "
        f"that as with / without ≥ {IDLE_BRIDGE_MIN:g}, and every round is shown so that the spread between rounds, "
        f"the noise of this machine, can be judged. Mode: {mode}; medians over rounds.",
        "",
        "| scenario | metric | without a bridge (fanin-q1) | with an idle bridge | every round (without ; with) | "
        "with / without | target |",
        "|" + "---|" * 7,
    ] + rows + [""]


def stuck_markdown(recs, mode):
    runs = [r for r in recs if r["scenario"] in STUCK]
    if not runs:
        return []
    lines = [
        "## One stuck subscriber among healthy ones",
        "",
        "One publisher sends to 10 healthy subscribers and to one that subscribes and then never reads its socket "
        "(until the run is over, when it is read for a while: what the broker had kept for it). Healthy loss must "
        "be 0. Publisher msg/s = messages sent / time from the first publish to the last write (QoS 0) or last "
        "PUBACK (QoS 1); longest wait = the longest time the publisher saw neither a write complete nor a PUBACK "
        f"arrive (how long the broker held it). RSS in MiB. Mode: {mode}; one row per run.",
        "",
        "| scenario | peer | round | result | healthy: delivered / expected | lost | dups | publisher msg/s | "
        "time to publish all (s) | longest wait (s) | broker RSS before / peak / end | stuck subscriber: got after "
        "release / sent | stuck closed by broker |",
        "|" + "---|" * 13,
    ]
    for rec in sorted(runs, key=lambda r: (STUCK.index(r["scenario"]), PEERS.index(r["peer"]), r["round"])):
        x = rec.get("result") or {}
        state = run_state(rec)
        result = state if state == "clean" else f"**{SHOWN[state]}**" + (f": {why_failed(rec)}" if state == "failed" else "")
        rate = (x.get("sent") or 0) / x["publish_s"] if x.get("publish_s") else None
        lines.append(
            f"| {rec['scenario']} | {rec['peer']} | {rec['round']} | {result} | {count(x.get('delivered'))} / "
            f"{count(x.get('expected'))} | {count(x.get('lost'))} ({pct(lost_pct(x)) if x else '—'}) | "
            f"{count(x.get('dups'))} | {fmt(rate)} | {fmt(x.get('publish_s'))} | {fmt(x.get('pub_max_gap_s'))} | "
            f"{mib(x.get('broker_rss_kib_before'))} / {mib(x.get('broker_rss_kib_max'))} / "
            f"{mib(x.get('broker_rss_kib_after'))} | {count(x.get('stuck_received'))} / "
            f"{count(x.get('stuck_expected'))} | {'yes' if x.get('stuck_closed_by_broker') else 'no'} |"
        )
    return lines + [""]


def every_run_markdown(recs):
    lines = [
        "## Every run",
        "",
        "Lost: sent to a subscriber and never received by it; dups: every extra copy received; subscribers with "
        "loss: how many of the run's subscribers missed anything; longest wait: the longest time a publisher saw "
        "neither a write complete nor a PUBACK arrive. Clean: no loss, no duplicate, no stall, error or timeout, "
        "the broker alive.",
        "",
        "| scenario | peer | round | result | sent | received | delivered | lost | dups | subscribers with loss | "
        "reordered | longest wait (s) | errors |",
        "|" + "---|" * 13,
    ]
    order = {s: i for i, s in enumerate([m[0] for m in METRICS] + STUCK + [c for c, _ in CLUSTER_PAIRS]
                                        + [a for a, _ in ACL_PAIRS] + DURABLE + BRIDGE
                                        + [a for a, _ in IDLE_BRIDGE_PAIRS + RULES_PAIRS])}
    for rec in sorted(recs, key=lambda r: (order.get(r["scenario"], 99), r["scenario"], ALL_PEERS.index(r["peer"])
                                           if r["peer"] in ALL_PEERS else 9, r["round"])):
        x = rec.get("result") or {}
        state = run_state(rec)
        errors = "; ".join((x.get("errors") or [])[:2]).replace("|", "/") or rec.get("error", "")
        if rec["scenario"] == "conns":
            sent, received = f"{count(x.get('requested'))} asked", "—"
            delivered = f"{count(x.get('established'))} held, {count(x.get('alive_after_ping'))} answered ping"
            lost = dups = subs = reordered = wait = "—"
        else:
            sent, received, delivered = count(x.get("sent")), count(x.get("received")), count(x.get("delivered"))
            lost = f"{count(x.get('lost'))} ({pct(lost_pct(x)) if x else '—'})"
            dups, reordered = count(x.get("dups")), count(x.get("reordered"))
            subs = f"{count(x.get('subs_with_loss'))} of {count(x.get('subscribers'))}"
            wait = fmt(x.get("pub_max_gap_s"))
        lines.append(f"| {rec['scenario']} | {rec['peer']} | {rec['round']} | "
                     f"{state if state == 'clean' else '**' + SHOWN[state] + '**'} | {sent} | {received} | {delivered} | "
                     f"{lost} | {dups} | {subs} | {reordered} | {wait} | {errors} |")
    return lines + [""]


def markdown(peers, cells, machine, mode, recs):
    lines = ["# ractmq vs Mosquitto vs rumqttd", ""]
    if machine:
        lines += ["```", machine.strip(), "```", ""]
    lines += [
        f"Mode: {mode}. Every broker on its defaults (benches/README.md). Medians over rounds, each round a run with "
        "its own loss: a figure is shown only when every round of it lost and duplicated nothing (and stalled, "
        "failed and timed out nowhere); otherwise the cell says which rounds lost what, and no ratio is computed. "
        "Ratio = ractmq / peer: above 1 is better for rows marked ↑, below 1 for rows marked ↓.",
        "",
    ]
    head = ["scenario", "metric"] + peers
    others = [p for p in peers if p != "ractmq"]
    if "ractmq" in peers:
        head += [f"ractmq/{p}" for p in others] + ["target"]
    if any(cells.get(scenario, {}).get(key) for scenario, key, _, _ in METRICS):
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
    for scenario, key, label, higher in METRICS:
        m = cells.get(scenario, {}).get(key)
        if not m:
            continue
        row = [scenario, f"{label} {'↑' if higher else '↓'}"]
        row += [m[p].text(key in DETAILED) if p in m else "—" for p in peers]
        if "ractmq" in peers:
            row += [ratio_text(cells, scenario, key, p) for p in others]
            row.append(target_text(cells, scenario, key))
        lines.append("| " + " | ".join(row) + " |")
    lines += [""] + stuck_markdown(recs, mode) + cross_node_markdown(cells, mode) + acl_markdown(cells, mode)
    lines += durable_markdown(cells, mode)
    lines += bridge_markdown(cells, mode) + idle_bridge_markdown(cells, mode) + rules_markdown(cells, mode)
    lines += every_run_markdown(recs)
    return "\n".join(lines) + "\n"


def chart_bars(cells, peers, scenario, key):
    """The bars of one panel: one per peer (None where not clean), or for a cross-node scenario ractmq on one
    node and across two."""
    m = cells[scenario][key]
    if scenario in DURABLE:
        return [(p, m[p].value, m[p].bad()) for p in DURABLE_PEERS if p in m]
    plain = dict(IDLE_BRIDGE_PAIRS).get(scenario)
    if plain is not None:
        bars = []
        one = cells.get(plain, {}).get(key, {}).get("ractmq")
        if one is not None:
            bars.append(("ractmq", one.value, one.bad()))
        return bars + [("ractmq, idle bridge", m["ractmq"].value, m["ractmq"].bad())]
    if scenario in BRIDGE:
        return [(f"{p}'s bridge", m[p].value, m[p].bad()) for p in BRIDGE_PEERS if p in m]
    single = dict(CLUSTER_PAIRS).get(scenario)
    if single is None:
        return [(p, m[p].value, m[p].bad()) for p in peers if p in m]
    bars = []
    one = cells.get(single, {}).get(key, {}).get("ractmq")
    if one is not None:
        bars.append(("ractmq, 1 node", one.value, one.bad()))
    return bars + [("2 nodes, n1 → n2", m["ractmq"].value, m["ractmq"].bad())]


def chart(peers, cells, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: matplotlib missing, no chart", file=sys.stderr)
        return False
    panels = [(s, k, label, hi) for s, k, label, hi in METRICS if cells.get(s, {}).get(k)]
    panels += [(c, k, label, hi) for c, _, k, label, hi, _, _, _ in cross_node_rows(cells)]
    panels += [(s, k, label, hi) for s in DURABLE for k, label, hi in DURABLE_METRICS if cells.get(s, {}).get(k)]
    panels += [(s, k, label, hi) for s in BRIDGE for k, label, hi in BRIDGE_METRICS if cells.get(s, {}).get(k)]
    panels += [(a, k, label, hi) for a, _ in IDLE_BRIDGE_PAIRS for k, label, hi in PAIR_METRICS
               if cells.get(a, {}).get(k, {}).get("ractmq")]
    if not panels:
        return False
    cols = 4
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    colors = {
        "mosquitto": "#3c7dc4",
        "rumqttd": "#e08a2c",
        "ractmq": "#3aa655",
        "ractmq, 1 node": "#3aa655",
        "2 nodes, n1 → n2": "#2b7a3f",
        "ractmq-mem": "#8fd19e",
        "mosquitto-persist": "#1f4e87",
        "mosquitto's bridge": "#3c7dc4",
        "ractmq's bridge": "#3aa655",
        "ractmq, idle bridge": "#2b7a3f",
    }
    for ax, (scenario, key, label, higher) in zip(axes.flat, panels):
        bars = chart_bars(cells, peers, scenario, key)
        xs = [name for name, _, _ in bars]
        ax.bar(xs, [v or 0 for _, v, _ in bars], color=[colors.get(name, "gray") for name in xs])
        ax.set_title(f"{scenario}\n{label} {'↑' if higher else '↓'}", fontsize=9)
        ax.tick_params(labelsize=8)
        for i, (_, v, bad) in enumerate(bars):
            ax.annotate(fmt(v, key) if v is not None else bad, (i, v or 0), ha="center", va="bottom", fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


def cell_json(c):
    return {
        "value": c.value,
        "clean": c.clean,
        "rounds": len(c.runs),
        "lossy_rounds": c.states.count("lossy"),
        "failed_rounds": c.states.count("failed"),
        "lost_pct_per_round": [lost_pct(r.get("result") or {}) for r in c.runs],
        "dups_per_round": [(r.get("result") or {}).get("dups") for r in c.runs],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--line", help="print a one-line summary of one raw record and exit")
    ap.add_argument("--raw")
    ap.add_argument("--machine")
    ap.add_argument("--out")
    ap.add_argument("--mode", default="full")
    a = ap.parse_args()
    if a.line:
        print(line_summary(json.loads(a.line)))
        return
    recs = load(a.raw)
    peers, cells = summarize(recs)
    machine = Path(a.machine).read_text() if a.machine and Path(a.machine).exists() else ""
    md = markdown(peers, cells, machine, a.mode, recs)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(md)
    summary = {
        "mode": a.mode,
        "machine": dict(l.split(": ", 1) for l in machine.splitlines() if ": " in l),
        # only figures whose every round was clean; "cells" says what the others lost
        "medians": {s: {k: {p: c.value for p, c in m.items() if c.clean} for k, m in ks.items()}
                    for s, ks in cells.items()},
        "cells": {s: {k: {p: cell_json(c) for p, c in m.items()} for k, m in ks.items()} for s, ks in cells.items()},
        "ratios_ractmq_over_peer": {
            f"{s}/{k}": {p: ratio(cells, s, k, p) for p in peers if p != "ractmq"}
            for s, k, _, _ in METRICS
            if cells.get(s, {}).get(k)
        },
        "targets": {f"{s}/{k}": target_text(cells, s, k) for (s, k) in TARGETS if cells.get(s, {}).get(k)},
        "durable": {
            f"{s}/{k}": {
                "values": {p: c.value for p, c in cells.get(s, {}).get(k, {}).items() if p in DURABLE_PEERS},
                "ratios_durable_over": {p: durable_ratio(cells, s, k, p) for p in DURABLE_PEERS[1:]},
                "targets": durable_target_text(cells, s) if k == "msgs_per_s" else None,
            }
            for s in DURABLE for k, _, _ in DURABLE_METRICS if cells.get(s, {}).get(k)
        },
        "bridges": {
            f"{s}/{k}": {
                "values": {p: c.value for p, c in cells.get(s, {}).get(k, {}).items()},
                "ratio_ractmq_over_mosquitto": ratio(cells, s, k, "mosquitto"),
                "targets": bridge_target_text(cells, s) if k == "msgs_per_s" else None,
            }
            for s in BRIDGE for k, _, _ in BRIDGE_METRICS if cells.get(s, {}).get(k)
        },
        "idle_bridge": {
            f"{a}/{k}": {
                "without_scenario": b,
                "without": value(cells, b, k, "ractmq"),
                "with_idle_bridge": value(cells, a, k, "ractmq"),
                "with_over_without": (value(cells, a, k, "ractmq") / value(cells, b, k, "ractmq")
                                      if value(cells, a, k, "ractmq") is not None and value(cells, b, k, "ractmq")
                                      else None),
            }
            for a, b in IDLE_BRIDGE_PAIRS for k, _, _ in PAIR_METRICS if cells.get(a, {}).get(k, {}).get("ractmq")
        },
        "cross_node": {
            f"{c}/{k}": {"single_node_scenario": s, "single_node": one.value if one else None,
                         "cross_node": two.value, "cross_over_single": r}
            for c, s, k, _, _, one, two, r in cross_node_rows(cells)
        },
        "runs": recs,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    if chart(peers, cells, out / "results.png"):
        print(f"chart: {out / 'results.png'}", file=sys.stderr)
    print(md)


if __name__ == "__main__":
    main()
