// Overview: the node at a glance. Tiles from /status, rates from the counters of /stats (sampled every second,
// differenced here), readiness from /health and the listeners.

import * as api from "../api.js";
import { LiveChart, Rates } from "../chart.js";
import { h, fill, tile, card, table, badge, num, rate, duration } from "../ui.js";

/** Every counter of a message the node did not deliver, with the words an operator reads. */
const DROPS = [
  ["dropped_queue_full", "queue full"],
  ["dropped_offline_queue_full", "offline queue full"],
  ["dropped_expired", "expired"],
  ["dropped_too_large", "too large"],
  ["dropped_local_subscriber", "in-process subscriber"],
  ["dropped_retained_full", "retained store full"],
  ["dropped_forward", "cluster forward"],
  ["messages_no_subscribers", "no subscribers"],
];

export default {
  title: "Overview",
  icon: "◉",
  render(view, ctx) {
    const tiles = h("div", { class: "grid tiles", id: "overview-tiles" });
    const msgChart = h("div", { class: "chart", id: "chart-messages" });
    const dropChart = h("div", { class: "chart", id: "chart-drops" });
    const msgNow = h("span", { class: "now" });
    const dropNow = h("span", { class: "now" });
    const health = h("div");
    const listeners = h("div");
    fill(view,
      tiles,
      h("div", { class: "grid two" },
        h("section", { class: "card" }, h("div", { class: "chart-title" }, h("h2", {}, "Messages per second"), msgNow), msgChart),
        h("section", { class: "card" }, h("div", { class: "chart-title" }, h("h2", {}, "Drops per second, by reason"), dropNow), dropChart)),
      h("div", { class: "grid two" }, card("Readiness", health), card("Listeners", listeners)));

    const messages = new LiveChart(msgChart, { series: ["in", "out"], format: rate });
    const drops = new LiveChart(dropChart, { series: DROPS.map(([, label]) => label), format: rate });
    ctx.onLeave(() => { messages.destroy(); drops.destroy(); });
    const rates = new Rates();
    let showAllChecks = false;
    // From /health, every 5 s: whether load balancers should send clients here.
    let readiness = null;

    ctx.every(1000, async () => {
      const [status, stats] = await Promise.all([api.get("/status"), api.get("/stats")]);
      fill(tiles,
        tile("Status", readiness === null ? badge("running", "ok")
          : readiness ? badge("ready", "ok") : badge("not ready", "bad"), "tile-status"),
        tile("Node", status.node, "tile-node"),
        tile("Version", status.version, "tile-version"),
        tile("Uptime", duration(status.uptime_s), "tile-uptime"),
        tile("Connections", num(status.clients_connected), "tile-connections"),
        tile("Sessions", num(status.sessions), "tile-sessions"),
        tile("Subscriptions", num(status.subscriptions), "tile-subscriptions"),
        tile("Retained", num(status.retained), "tile-retained"));
      const r = rates.next(Date.now(), stats);
      if (!r) return;
      const t = Date.now() / 1000;
      messages.push(t, [r.messages_received, r.messages_sent]);
      drops.push(t, DROPS.map(([k]) => r[k] ?? 0));
      msgNow.textContent = `in ${rate(r.messages_received)}/s · out ${rate(r.messages_sent)}/s`;
      const dropped = DROPS.reduce((sum, [k]) => sum + (r[k] ?? 0), 0);
      dropNow.textContent = `${rate(dropped)}/s · total ${num(DROPS.reduce((s, [k]) => s + (stats[k] ?? 0), 0))}`;
    });

    ctx.every(5000, async () => {
      const [ready, ls] = await Promise.all([api.get("/health"), api.get("/listeners")]);
      readiness = !!ready.ready;
      const checks = checksOf(ready);
      const down = checks.filter((c) => !c.up);
      const checkTable = (rows) => table([
        { label: "check", get: (c) => c.name },
        { label: "", get: (c) => (c.up ? badge("up", "ok") : badge("down", "bad")) },
      ], rows, { empty: "no checks" });
      // At a glance: what is down; the full list on demand.
      fill(health,
        h("p", {}, ready.ready ? badge("ready", "ok") : badge("not ready", "bad"), " ",
          h("span", { class: "hint" }, `${checks.length - down.length} of ${checks.length} checks pass (what /api/v1/health/ready tells load balancers)`)),
        down.length ? checkTable(down) : null,
        h("details", { open: showAllChecks, ontoggle: (e) => { showAllChecks = e.target.open; } },
          h("summary", { class: "hint" }, "every check"), checkTable(checks)));
      fill(listeners, table([
        { label: "listener", get: (l) => l.name },
        { label: "address", get: (l) => h("code", {}, l.bound ?? l.configured) },
        { label: "path", get: (l) => l.websocket_path ?? "" },
        { label: "state", get: (l) => (l.running ? badge("running", "ok") : badge("stopped", "bad")) },
        { label: "connections", num: true, get: (l) => num(l.connections) },
      ], ls));
    });
  },
};

/** /health's checks (an object of name -> up) as a list. */
function checksOf(health) {
  return Object.entries(health.checks ?? {}).map(([name, up]) => ({ name, up }));
}
