// Supervision: the node's live actor tree (/api/v1/supervision), each supervisor with its strategy, intensity,
// children and restarts, and the restarts per kind over time. With --api-chaos, each actor chaos can reach has a
// kill button; supervision then restarts it, and the tree and counters show it.

import * as api from "../api.js";
import { LiveChart } from "../chart.js";
import { h, fill, card, badge, tile, num, confirm } from "../ui.js";

const KINDS = [["session", "sessions"], ["shard", "topic shards"], ["other", "other actors"]];

export default {
  title: "Supervision",
  icon: "⌥",
  render(view, ctx) {
    const tiles = h("div", { class: "grid tiles" });
    const chartEl = h("div", { class: "chart", id: "chart-restarts" });
    const tree = h("div", { id: "supervision-tree" });
    const note = h("span", { class: "hint", id: "chaos-note" });
    const collapsed = new Set();
    fill(view, tiles,
      h("section", { class: "card" }, h("h2", {}, "Restarts over time (since this page opened)"), chartEl),
      card("Actor tree", tree, note));
    const chart = new LiveChart(chartEl, { series: KINDS.map(([, label]) => label), points: 300, integer: true, format: (n) => String(n) });
    ctx.onLeave(() => chart.destroy());

    const kill = (target, name) => ctx.act(`Killed ${name}: its supervisor restarts it`, async () => {
      const ok = await confirm(`Kill ${name}?`,
        `The ${target.kind} actor “${target.target}” is killed as a crash would kill it. Its supervisor restarts it; a session's client is disconnected and may reconnect.`,
        "Kill");
      if (!ok) return;
      await api.post("/chaos/kill", target);
      await refresh();
    });

    function renderNode(node, path, chaos) {
      const key = `${path}/${node.name}`;
      const hasChildren = (node.children?.length ?? 0) > 0;
      const open = !collapsed.has(key);
      const statusKind = node.status === "running" ? "ok" : node.status === "stopped" ? "bad" : "warn";
      const meta = [];
      if (node.kind === "supervisor") {
        meta.push(node.strategy ?? "supervisor");
        if (node.intensity) meta.push(`intensity ${node.intensity.max_restarts} in ${node.intensity.within_s} s`);
        meta.push(`${num(node.children_count)} ${node.children_count === 1 ? "child" : "children"}`);
        if (node.hibernated) meta.push(`${num(node.hibernated)} hibernated`);
      }
      const row = h("div", { class: "row", "data-actor": key },
        h("button", {
          class: "toggle", "aria-label": open ? "collapse" : "expand", disabled: !hasChildren,
          onclick: () => { if (open) collapsed.add(key); else collapsed.delete(key); ctx.act(null, refresh); },
        }, hasChildren ? (open ? "▾" : "▸") : "·"),
        badge(node.status, statusKind),
        h("span", { class: "name" }, node.name),
        node.kind === "supervisor" ? badge("supervisor", "info") : null,
        h("span", { class: "meta" }, meta.join(" · ")),
        node.restarts ? h("span", { class: "meta restarts" }, `restarted ${num(node.restarts)}×`) : null,
        chaos && node.kill ? h("button", { class: "small danger kill", "data-kill": `${node.kill.kind}:${node.kill.target}`, onclick: () => kill(node.kill, node.name) }, "Kill") : null);
      const children = open && hasChildren
        ? h("ul", { class: "tree" }, node.children.map((c) => renderNode(c, key, chaos)),
          node.more ? h("li", { class: "hint" }, `and ${num(node.more)} more`) : null)
        : null;
      return h("li", {}, row, children);
    }

    async function refresh() {
      const s = await api.get("/supervision");
      fill(tiles, KINDS.map(([k, label]) => tile(`Restarts: ${label}`, num(s.restarts[k] ?? 0), `restarts-${k}`)));
      fill(tree, h("ul", { class: "tree" }, renderNode(s.tree, "", s.chaos)));
      note.textContent = s.chaos ? "Chaos is on (--api-chaos): kill buttons are live." : "Start the node with --api-chaos for kill buttons.";
      chart.push(Date.now() / 1000, KINDS.map(([k]) => s.restarts[k] ?? 0));
    }

    ctx.every(1000, refresh);
  },
};
