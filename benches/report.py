#!/usr/bin/env python3
"""Why this exists: turns the raw results of benches/run.sh (one JSON line per run) into what people read:
a markdown table of medians with ractmq/peer ratios and the targets, the cross-node figures of a 2-node ractmq
cluster beside ractmq's single-node ones, a loss/duplicates table covering every run, a JSON summary and a PNG
chart, all in the results folder. `--line` prints a one-line progress summary of a single run instead.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

PEERS = ["mosquitto", "rumqttd", "ractmq"]

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

# Cross-node scenarios (ractmq only: publishers on node n1, subscribers on node n2) and the single-node scenario
# of the same shape they are compared with: (cross-node scenario, single-node scenario, metric key, label, higher
# is better).
CLUSTER_PAIRS = [("cluster-p2p-q0", "p2p-q0"), ("cluster-p2p-q1", "p2p-q1"), ("cluster-latency-q0", "latency-q0")]
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
    ("fanout-q0", "msgs_per_s"): [("rumqttd", "ratio>=", 1.0), ("mosquitto", "ratio>=", 2.0)],
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


def line_summary(rec):
    r = rec.get("result") or {}
    s = f"r{rec['round']} {rec['scenario']:<18} {rec['peer']:<10}"
    if not rec.get("result"):
        return s + f" FAILED (loadgen exit {rec.get('loadgen_exit')}, broker alive {rec.get('broker_alive')})"
    if rec["scenario"] == "conns":
        s += (f" {r.get('established')}/{r.get('requested')} conns, {fmt(r.get('connects_per_s'))}/s,"
              f" {fmt(r.get('rss_bytes_per_conn'))} B/conn, alive after ping {r.get('alive_after_ping')}")
    else:
        s += f" {fmt(r.get('msgs_per_s'))} msg/s"
        if r.get("latency_us"):
            lat = r["latency_us"]
            s += f", p50 {fmt(lat.get('p50'))} µs p99 {fmt(lat.get('p99'))} µs max {fmt(lat.get('max'))} µs"
        s += (f", cpu/M {fmt(r.get('broker_cpu_s_per_million'), 'broker_cpu_s_per_million')} s,"
              f" lost {r.get('lost')} dups {r.get('dups')} reordered {r.get('reordered')}")
    if not r.get("ok", False):
        s += "  NOT OK"
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
    peers = [p for p in PEERS if any(r["peer"] == p for r in recs)]
    scenarios = sorted({r["scenario"] for r in recs})
    medians = {}
    measured = [(s, k) for s, k, _, _ in METRICS] + [(c, k) for c, _, k, _, _ in CLUSTER_METRICS]
    for scenario, key in measured:
        for peer in peers:
            vals = [metric_of(r.get("result"), key) for r in recs if r["scenario"] == scenario and r["peer"] == peer]
            vals = [v for v in vals if v is not None and v == v]
            if vals:
                medians.setdefault(scenario, {}).setdefault(key, {})[peer] = statistics.median(vals)
    integrity = []
    for scenario in scenarios:
        for peer in peers:
            runs = [r for r in recs if r["scenario"] == scenario and r["peer"] == peer]
            if not runs:
                continue
            res = [r.get("result") or {} for r in runs]
            row = {
                "scenario": scenario,
                "peer": peer,
                "runs": len(runs),
                "failed_runs": sum(1 for r in runs if not r.get("result") or not r["result"].get("ok", False)),
                "broker_died": sum(1 for r in runs if not r.get("broker_alive", True)),
                "errors": sorted({e for x in res for e in (x.get("errors") or [])})[:5],
            }
            if scenario == "conns":
                row["established_min"] = min((x.get("established") or 0) for x in res)
                row["requested"] = max((x.get("requested") or 0) for x in res)
                row["alive_after_ping_min"] = min((x.get("alive_after_ping") or 0) for x in res)
            else:
                for k in ("sent", "delivered", "lost", "dups", "reordered", "misrouted", "stalls", "closed_by_broker"):
                    row[k] = sum((x.get(k) or 0) for x in res)
            integrity.append(row)
    return peers, medians, integrity


def ratio(medians, scenario, key, peer):
    m = medians.get(scenario, {}).get(key, {})
    a, b = m.get("ractmq"), m.get(peer)
    if a is None or not b:
        return None
    return a / b


def target_text(medians, scenario, key):
    out = []
    for peer, kind, value in TARGETS.get((scenario, key), []):
        if kind == "abs<=":
            v = medians.get(scenario, {}).get(key, {}).get("ractmq")
            ok = v is not None and v <= value
            out.append(f"≤ {value:g} {'✅' if ok else '❌'}")
        else:
            r = ratio(medians, scenario, key, peer)
            ok = r is not None and (r >= value if kind == "ratio>=" else r <= value)
            sign = "≥" if kind == "ratio>=" else "≤"
            out.append(f"{sign} {value:g}× {peer} {'✅' if ok else '❌'}")
    return "; ".join(out)


def cross_node_rows(medians):
    """(cross-node scenario, single-node scenario, key, label, higher, single value, cross value, cross/single)
    for every cross-node metric measured."""
    rows = []
    for cross, single, key, label, higher in CLUSTER_METRICS:
        c = medians.get(cross, {}).get(key, {}).get("ractmq")
        if c is None:
            continue
        s = medians.get(single, {}).get(key, {}).get("ractmq")
        rows.append((cross, single, key, label, higher, s, c, c / s if s else None))
    return rows


def runs_ok(recs, scenario):
    """'ok runs/runs' of a scenario's ractmq runs: a throughput or latency from a run that lost messages or
    stalled is not a rate the broker sustains."""
    runs = [r for r in recs if r["scenario"] == scenario and r["peer"] == "ractmq"]
    ok = sum(1 for r in runs if (r.get("result") or {}).get("ok", False) and r.get("broker_alive", True))
    return f"{ok}/{len(runs)}" + ("" if ok == len(runs) else " ⚠")


def count(v):
    return f"{v:,}" if isinstance(v, int) else "—"


def cross_node_markdown(recs, medians, mode):
    rows = cross_node_rows(medians)
    runs = [r for r in recs if r["scenario"].startswith("cluster-")]
    if not rows and not runs:
        return []
    lines = [
        "## Cross-node (ractmq cluster of 2 on one machine)",
        "",
        "Two ractmq nodes on this machine (n1 and n2, joined over loopback); publishers connect to n1, subscribers "
        "to n2, so every message crosses between the nodes. Each is set beside ractmq's single-node run of the same "
        f"shape (same load, one node). Mode: {mode}; medians over rounds. Broker CPU is the sum of both nodes. "
        "Cross / single: above 1 is better for rows marked ↑, below 1 for rows marked ↓. Ok runs: runs without "
        "loss, duplicates, stalls or errors (⚠: a figure from a run that was not ok).",
        "",
        "| cross-node scenario | metric | single-node ractmq (scenario) | cross-node ractmq, n1 → n2 | "
        "cross-node / single-node | ok runs: single-node, cross-node |",
        "|---|---|---|---|---|---|",
    ]
    for cross, single, key, label, higher, s, c, r in rows:
        lines.append(f"| {cross} | {label} {'↑' if higher else '↓'} | {fmt(s, key)} ({single}) | {fmt(c, key)} | "
                     f"{fmt(r)} | {runs_ok(recs, single)}, {runs_ok(recs, cross)} |")
    lines += [
        "",
        "Every cross-node run (a run is ok only with no loss, no duplicate, no error and no timeout):",
        "",
        "| cross-node scenario | round | ok | both nodes alive | sent | delivered | lost | dups | reordered | stalls | "
        "errors |",
        "|" + "---|" * 11,
    ]
    for rec in sorted(runs, key=lambda r: (r["scenario"], r["round"])):
        x = rec.get("result") or {}
        errors = "; ".join((x.get("errors") or [])[:2]).replace("|", "/") or rec.get("error", "")
        lines.append(
            f"| {rec['scenario']} | {rec['round']} | {'yes' if x.get('ok') else 'NO'} | "
            f"{'yes' if rec.get('broker_alive', True) else 'NO'} | {count(x.get('sent'))} | "
            f"{count(x.get('delivered'))} | {count(x.get('lost'))} | {count(x.get('dups'))} | "
            f"{count(x.get('reordered'))} | {count(x.get('stalls'))} | {errors} |"
        )
    return lines + [""]


def markdown(peers, medians, integrity, machine, mode, recs):
    lines = ["# ractmq vs Mosquitto vs rumqttd", ""]
    if machine:
        lines += ["```", machine.strip(), "```", ""]
    lines += [
        f"Mode: {mode}. Medians over rounds. Ratio = ractmq / peer: above 1 is better for rows marked ↑, below 1 is "
        "better for rows marked ↓.",
        "",
    ]
    head = ["scenario", "metric"] + peers
    others = [p for p in peers if p != "ractmq"]
    if "ractmq" in peers:
        head += [f"ractmq/{p}" for p in others] + ["target"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for scenario, key, label, higher in METRICS:
        m = medians.get(scenario, {}).get(key)
        if not m:
            continue
        row = [scenario, f"{label} {'↑' if higher else '↓'}"] + [fmt(m.get(p), key) for p in peers]
        if "ractmq" in peers:
            row += [fmt(ratio(medians, scenario, key, p)) for p in others]
            row.append(target_text(medians, scenario, key))
        lines.append("| " + " | ".join(row) + " |")
    lines += [""] + cross_node_markdown(recs, medians, mode)
    lines += ["## Integrity of every run (sums over rounds)", ""]
    lines.append("| scenario | peer | runs | not ok | broker died | sent | delivered | lost | dups | reordered | "
                 "stalls | errors |")
    lines.append("|" + "---|" * 12)
    for r in integrity:
        if r["scenario"] == "conns":
            sent = f"{r['requested']} asked"
            delivered = f"{r['established_min']} held, {r['alive_after_ping_min']} answered ping (min)"
            lost = dups = reordered = stalls = "—"
        else:
            sent, delivered = f"{r['sent']:,}", f"{r['delivered']:,}"
            lost, dups, reordered, stalls = r["lost"], r["dups"], r["reordered"], r["stalls"]
        errors = "; ".join(r["errors"]).replace("|", "/") or ""
        lines.append(f"| {r['scenario']} | {r['peer']} | {r['runs']} | {r['failed_runs']} | {r['broker_died']} | "
                     f"{sent} | {delivered} | {lost} | {dups} | {reordered} | {stalls} | {errors} |")
    return "\n".join(lines) + "\n"


def chart_bars(medians, peers, scenario, key):
    """The bars of one panel: one per peer, or for a cross-node scenario ractmq on one node and across two."""
    m = medians[scenario][key]
    single = dict((c, s) for c, s in CLUSTER_PAIRS).get(scenario)
    if single is None:
        return [(p, m[p]) for p in peers if p in m]
    bars = []
    one = medians.get(single, {}).get(key, {}).get("ractmq")
    if one is not None:
        bars.append(("ractmq, 1 node", one))
    return bars + [("2 nodes, n1 → n2", m["ractmq"])]


def chart(peers, medians, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: matplotlib missing, no chart", file=sys.stderr)
        return False
    panels = [(s, k, label, hi) for s, k, label, hi in METRICS if medians.get(s, {}).get(k)]
    cross = cross_node_rows(medians)
    panels += [(c, k, label, hi) for c, _, k, label, hi, _, _, _ in cross]
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
    }
    for ax, (scenario, key, label, higher) in zip(axes.flat, panels):
        bars = chart_bars(medians, peers, scenario, key)
        xs = [name for name, _ in bars]
        ax.bar(xs, [v for _, v in bars], color=[colors.get(name, "gray") for name in xs])
        ax.set_title(f"{scenario}\n{label} {'↑' if higher else '↓'}", fontsize=9)
        ax.tick_params(labelsize=8)
        for i, (_, v) in enumerate(bars):
            ax.annotate(fmt(v, key), (i, v), ha="center", va="bottom", fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


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
    peers, medians, integrity = summarize(recs)
    machine = Path(a.machine).read_text() if a.machine and Path(a.machine).exists() else ""
    md = markdown(peers, medians, integrity, machine, a.mode, recs)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(md)
    ratios = {
        f"{s}/{k}": {p: ratio(medians, s, k, p) for p in peers if p != "ractmq"}
        for s, k, _, _ in METRICS
        if medians.get(s, {}).get(k)
    }
    summary = {
        "mode": a.mode,
        "machine": dict(l.split(": ", 1) for l in machine.splitlines() if ": " in l),
        "medians": medians,
        "ratios_ractmq_over_peer": ratios,
        "targets": {f"{s}/{k}": target_text(medians, s, k) for (s, k) in TARGETS if medians.get(s, {}).get(k)},
        "cross_node": {
            f"{c}/{k}": {"single_node_scenario": s, "single_node": one, "cross_node": two, "cross_over_single": r}
            for c, s, k, _, _, one, two, r in cross_node_rows(medians)
        },
        "integrity": integrity,
        "runs": recs,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    if chart(peers, medians, out / "results.png"):
        print(f"chart: {out / 'results.png'}", file=sys.stderr)
    print(md)


if __name__ == "__main__":
    main()
