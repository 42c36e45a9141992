// Cluster: every member up or down, drawn as a picture of the nodes and the links between them, with the
// messages this node has queued towards each; the members' table and the forwarding counters below it. This
// node's links are as it sees them now; the links between two other nodes are as those nodes last said in their
// hellos (`sees` in /api/v1/cluster); so are the messages each had queued towards the others (`queues`), beside
// this node's own, counted now.

import * as api from "../api.js";
import { h, svg, fill, card, table, badge, kv, num, confirm } from "../ui.js";

const STATE_COLOR = { up: "#2da44e", suspect: "#d4a72c", down: "#cf222e", left: "#8b95a5" };

export default {
  title: "Cluster",
  icon: "⬡",
  render(view, ctx) {
    const picture = h("div", { id: "cluster-map" });
    const members = h("div", { id: "cluster-members" });
    const stats = h("div");
    const evacuation = h("div", { id: "cluster-evacuation" });
    fill(view,
      card("Members and links", picture),
      h("div", { class: "grid side" }, card("Members", members), h("div", {}, card("This node", evacuation), card("Forwarding (this node)", stats))));

    const forget = (name) => ctx.act(`${name} forgotten: no node dials it, its routes are gone`, async () => {
      if (!(await confirm(`Forget ${name}?`, `Every node stops dialling ${name} and drops its routes. Do this for a node that is gone for good; a new run of it joins again through its seeds.`, "Forget"))) return;
      await api.post(`/cluster/forget/${api.enc(name)}`);
    });
    const evacuate = () => ctx.act("Evacuating: clients are sent to the other nodes", async () => {
      if (!(await confirm("Evacuate this node?", "New clients are refused, and connected ones are moved to the other nodes (MQTT 5 clients are told where to go). Their sessions follow them. Undo with Stop, or by restarting the node.", "Evacuate"))) return;
      await api.post("/node/evacuate");
    });
    const stopEvacuating = () => ctx.act("Evacuation stopped: the node takes clients again", () => api.del("/node/evacuate"));

    ctx.every(2000, async () => {
      const c = await api.get("/cluster");
      fill(picture, drawMap(c.members), c.clustered ? null
        : h("p", { class: "hint" }, "This node runs alone. Start nodes with --node-name, --cluster-listen and --seed to form a cluster (docs/clustering.md)."));
      fill(members, table([
        { label: "node", get: (m) => h("span", {}, h("strong", {}, m.name), m.is_self ? " (this node)" : "") },
        { label: "state", get: (m) => badge(m.state, m.state === "up" ? "ok" : m.state === "down" ? "bad" : "warn") },
        { label: "link", get: (m) => (m.is_self ? "" : m.linked ? badge("linked", "ok") : badge("no link", "bad")) },
        { label: "cluster address", get: (m) => h("code", {}, m.cluster_addr ?? "–") },
        { label: "MQTT", get: (m) => h("code", {}, m.mqtt_addr ?? "–") },
        { label: "last heard", num: true, get: (m) => (m.is_self || m.last_heard_ms_ago == null ? "" : `${num(m.last_heard_ms_ago)} ms ago`) },
        { label: "queued to", num: true, get: (m) => (m.is_self ? "" : num(m.queued_to ?? 0)) },
        { label: "", get: (m) => (!m.is_self && m.state === "down" ? h("button", { class: "small danger", "data-action": "forget", onclick: () => forget(m.name) }, "Forget") : "") },
      ], c.members, { key: (m) => m.name }));
      if (c.clustered) {
        const e = await api.get("/node/evacuate");
        fill(evacuation, e.evacuating
          ? [h("p", {}, badge(e.done ? "evacuated" : "evacuating", "warn"), " ", `${num(e.disconnected)} clients moved, ${num(e.clients_connected)} still connected`),
            h("button", { id: "evacuate-stop", onclick: stopEvacuating }, "Stop evacuating")]
          : [h("p", { class: "hint" }, "Before an upgrade: move this node's clients to the other nodes, keeping their sessions."),
            h("button", { class: "danger", id: "evacuate", onclick: evacuate }, "Evacuate this node")]);
      } else {
        fill(evacuation, h("p", { class: "hint" }, "Not clustered: there is nowhere to move clients to."));
      }
      const s = c.stats;
      fill(stats, s ? kv([
        ["forwarded", num(s.forwarded)],
        ["received", num(s.received)],
        ["relayed out / in", `${num(s.relayed_out)} / ${num(s.relayed_in)}`],
        ["duplicates skipped", num(s.duplicates_skipped)],
        ["dropped: queue full", num(s.dropped_queue_full)],
        ["dropped: node restarted", num(s.dropped_node_restarted)],
        ["dropped: too large", num(s.dropped_too_large)],
        ["sessions taken over / handed over", `${num(s.sessions_taken_over)} / ${num(s.sessions_handed_over)}`],
      ]) : h("p", { class: "hint" }, "Not clustered."));
    });
  },
};

/** "n1→n2 5": what `from` had queued towards `to` (from its last hello, or this node's own count). */
function queueText(from, to, n) {
  return `${from}→${to} ${n === undefined || n === null ? "?" : num(n)}`;
}

/**
 * The nodes on a circle, this node at the top. A line to each other node from this one, green if linked, dashed
 * red if not, with what is queued towards it; between two other nodes, green if each saw the other up when it
 * last said hello, dashed red if only one did.
 */
function drawMap(members) {
  const width = 900, height = 360, cx = width / 2, cy = height / 2 + 6, r = members.length > 1 ? 128 : 0;
  const ordered = [...members].sort((a, b) => (b.is_self - a.is_self) || a.name.localeCompare(b.name));
  const at = new Map(ordered.map((m, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / ordered.length;
    return [m.name, { x: cx + r * Math.cos(angle) * 1.6, y: cy + r * Math.sin(angle) }];
  }));
  const self = ordered.find((m) => m.is_self) ?? ordered[0];
  const links = ordered.filter((m) => m !== self).map((m) => {
    const a = at.get(self.name), b = at.get(m.name);
    const up = m.linked && m.state === "up";
    const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
    return svg("g", {},
      svg("line", { class: `link ${up ? "up" : "down"}`, x1: a.x, y1: a.y, x2: b.x, y2: b.y }),
      svg("text", { class: "queue", x: mid.x + 6, y: mid.y - 6, "data-queue": `${self.name}-${m.name}` },
        `${queueText(self.name, m.name, m.queued_to)} · ${queueText(m.name, self.name, m.queues?.[self.name])}`));
  });
  const others = ordered.filter((m) => m !== self && m.state === "up");
  const between = [];
  others.forEach((a, i) => others.slice(i + 1).forEach((b) => {
    const ab = (a.sees ?? []).includes(b.name), ba = (b.sees ?? []).includes(a.name);
    if (!ab && !ba) return;
    const p = at.get(a.name), q = at.get(b.name);
    between.push(svg("line", { class: `link ${ab && ba ? "up" : "down"} between`, "data-between": `${a.name}-${b.name}`, x1: p.x, y1: p.y, x2: q.x, y2: q.y }));
    between.push(svg("text", { class: "queue", x: (p.x + q.x) / 2, y: (p.y + q.y) / 2 + 16, "text-anchor": "middle", "data-queue": `${a.name}-${b.name}` },
      `${queueText(a.name, b.name, a.queues?.[b.name])} · ${queueText(b.name, a.name, b.queues?.[a.name])}`));
  }));
  const nodes = ordered.map((m) => {
    const p = at.get(m.name);
    const color = STATE_COLOR[m.state] ?? "#8b95a5";
    return svg("g", { class: "node", "data-node": m.name },
      svg("circle", { cx: p.x, cy: p.y, r: 30, fill: m.is_self ? "#e8f0fe" : "#fff", stroke: color }),
      svg("text", { x: p.x, y: p.y + 4, "text-anchor": "middle", "font-weight": "600" }, m.name.length > 12 ? m.name.slice(0, 11) + "…" : m.name),
      svg("text", { x: p.x, y: p.y + 48, "text-anchor": "middle", fill: color }, m.is_self ? `${m.state} · this node` : m.state));
  });
  return svg("svg", { class: "cluster-map", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "cluster members and links" }, ...between, ...links, ...nodes);
}
