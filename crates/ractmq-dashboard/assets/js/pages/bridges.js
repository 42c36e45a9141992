// Bridges: each bridge's status and counters; start, stop, restart, create, edit and delete; its dead letters,
// and replaying them. A bridge is edited as the JSON the API takes (the same keys as the configuration file).

import * as api from "../api.js";
import { h, fill, card, table, badge, num, confirm, modal, field } from "../ui.js";

/** A starting point for each kind: the keys a new bridge most often needs (docs/bridges.md has them all). */
const TEMPLATES = {
  mqtt: { kind: "mqtt", name: "cloud", server: "broker.example.com:1883", forward: ["sensors/#"], subscribe: [], remote_prefix: "", qos: 1 },
  http: { kind: "http", name: "webhook", url: "http://127.0.0.1:8080/hook", forward: ["alerts/#"], method: "POST", timeout_ms: 5000, retries: 3 },
  postgres: { kind: "postgres", name: "archive", url: "postgres://ractmq@127.0.0.1:5432/ractmq", forward: ["sensors/#"], sql: "INSERT INTO readings (topic, payload) VALUES (${topic}, ${payload})" },
  kafka: { kind: "kafka", name: "stream", brokers: ["127.0.0.1:9092"], topic: "mqtt", forward: ["sensors/#"] },
};

export default {
  title: "Bridges",
  icon: "⇆",
  render(view, ctx) {
    const list = h("div", { id: "bridges-table" });
    const letters = h("div", { id: "bridge-dlq" });
    let shownLetters = null;
    fill(view,
      card("Bridges", list, h("button", { class: "primary small", id: "bridge-create", onclick: () => editor(null) }, "New bridge")),
      letters);

    function editor(existing) {
      const text = h("textarea", { id: "bridge-json", rows: 16 });
      const kind = h("select", { id: "bridge-kind", disabled: !!existing }, Object.keys(TEMPLATES).map((k) => h("option", { value: k }, k)));
      const error = h("div", { class: "error-line" });
      text.value = JSON.stringify(existing ?? TEMPLATES.mqtt, null, 2);
      kind.addEventListener("change", () => { text.value = JSON.stringify(TEMPLATES[kind.value], null, 2); });
      modal(existing ? `Edit bridge ${existing.name}` : "New bridge", h("div", {},
        existing ? h("p", { class: "hint" }, "Saving replaces the bridge: it stops, takes the new settings and starts again. Hidden passwords stay as they were.")
          : h("div", { class: "form-row" }, field("Kind", kind, true), h("p", { class: "hint" }, "Every key: docs/bridges.md. Unknown keys are refused, naming the key.")),
        text, error),
      (close) => [
        h("button", { onclick: close }, "Cancel"),
        h("button", {
          class: "primary", id: "bridge-save",
          onclick: async () => {
            error.textContent = "";
            let body;
            try { body = JSON.parse(text.value); } catch (e) { error.textContent = `not JSON: ${e.message}`; return; }
            try {
              await api.saveItem("bridges", existing?.name, body);
              close();
              await ctx.act(existing ? `Bridge ${body.name} saved` : `Bridge ${body.name} created`, refresh);
            } catch (e) { error.textContent = e.message; }
          },
        }, existing ? "Save" : "Create"),
      ]);
    }

    const edit = (name) => ctx.act(null, async () => {
      const b = await api.get(`/bridges/${api.enc(name)}`);
      editor({ kind: b.kind, ...b.config });
    });

    const action = (name, what) => ctx.act(`Bridge ${name}: ${what}`, async () => {
      await api.post(`/bridges/${api.enc(name)}/${what}`);
      await refresh();
    });

    const remove = (name) => ctx.act(`Bridge ${name} deleted`, async () => {
      if (!(await confirm("Delete bridge", `Delete ${name}? What its buffer still holds is not sent.`, "Delete"))) return;
      await api.del(`/bridges/${api.enc(name)}`);
      if (shownLetters === name) { shownLetters = null; letters.replaceChildren(); }
      await refresh();
    });

    async function showLetters(name) {
      shownLetters = name;
      const dl = await api.get(`/bridges/${api.enc(name)}/dlq`);
      fill(letters, card(`Dead letters of ${name}`, table([
        { label: "#", num: true, get: (d) => d.id },
        { label: "topic", get: (d) => h("code", {}, d.topic) },
        { label: "payload", class: "truncate", get: (d) => h("span", { class: "mono" }, d.payload ?? `base64 ${d.payload_base64}`) },
        { label: "reason", get: (d) => d.reason },
        { label: "at", get: (d) => new Date(d.at_ms).toLocaleString() },
      ], dl, { empty: "No dead letters." }),
      h("button", { class: "small", disabled: !dl.length, onclick: () => ctx.act(`Replayed the dead letters of ${name}`, async () => { await api.post(`/bridges/${api.enc(name)}/dlq/replay`); await showLetters(name); }) }, "Replay all"),
      h("button", { class: "small ghost", onclick: () => { shownLetters = null; letters.replaceChildren(); } }, "close")));
    }

    async function refresh() {
      const all = await api.get("/bridges");
      fill(list, table([
        { label: "bridge", get: (b) => h("strong", {}, b.name) },
        { label: "kind", get: (b) => b.kind },
        { label: "remote", class: "truncate", get: (b) => h("code", { title: b.remote }, b.remote) },
        { label: "status", get: (b) => [badge(b.status, b.status === "running" ? "ok" : ""), " ", b.status === "running" ? badge(b.connected ? "connected" : "not connected", b.connected ? "ok" : "bad") : null] },
        { label: "sent", num: true, get: (b) => num(b.sent) },
        { label: "acked", num: true, get: (b) => num(b.acked) },
        { label: "failed", num: true, get: (b) => num(b.failed) },
        { label: "retried", num: true, get: (b) => num(b.retried) },
        { label: "queued", num: true, get: (b) => num(b.queued) },
        { label: "dropped", num: true, get: (b) => num(b.dropped) },
        { label: "dead letters", num: true, get: (b) => h("a", { href: "#/bridges", onclick: (e) => { e.preventDefault(); ctx.act(null, () => showLetters(b.name)); } }, num(b.dead_lettered)) },
        { label: "latency", num: true, get: (b) => `${(b.latency_ms ?? 0).toFixed(1)} ms` },
        { label: "", get: (b) => h("div", { class: "actions" },
          b.status === "running"
            ? h("button", { class: "small", onclick: () => action(b.name, "stop") }, "Stop")
            : h("button", { class: "small", onclick: () => action(b.name, "start") }, "Start"),
          h("button", { class: "small", onclick: () => action(b.name, "restart") }, "Restart"),
          h("button", { class: "small", onclick: () => edit(b.name) }, "Edit"),
          h("button", { class: "small danger", onclick: () => remove(b.name) }, "Delete")) },
      ], all, { key: (b) => b.name, empty: "No bridges. Define them in the configuration file ([[bridges.mqtt]]...) or create one here." }),
      all.some((b) => b.last_error) ? h("div", {}, all.filter((b) => b.last_error).map((b) => h("div", { class: "error-line" }, `${b.name}: ${b.last_error}`))) : null);
      if (shownLetters) await showLetters(shownLetters);
    }

    ctx.every(2000, refresh);
  },
};
