// Subscriptions and topics: who subscribed to what, the routes (this node's and the cluster's), the retained
// messages (view, delete), and publishing a message as the broker.

import * as api from "../api.js";
import { h, fill, card, table, badge, num, bytes, confirm, tabs, field } from "../ui.js";

const TABS = [
  { id: "subscriptions", label: "Subscriptions" },
  { id: "routes", label: "Routes" },
  { id: "retained", label: "Retained messages" },
  { id: "publish", label: "Publish" },
];

const SHOWN = 500;

export default {
  title: "Subscriptions & topics",
  nav: "Topics",
  icon: "#",
  render(view, ctx) {
    let tab = ctx.params.get("tab") ?? "subscriptions";
    let filter = "";
    const bar = h("div");
    const body = h("div");
    const search = h("input", { type: "search", id: "topic-search", placeholder: "filter by topic or client id" });
    search.addEventListener("input", () => { filter = search.value.trim(); ctx.act(null, refresh); });

    const switchTo = (id) => {
      tab = id;
      history.replaceState(null, "", `#/topics?tab=${id}`);
      fill(bar, tabs(TABS, tab, switchTo));
      ctx.act(null, refresh);
    };
    fill(bar, tabs(TABS, tab, switchTo));
    fill(view, bar, h("section", { class: "card" }, h("div", { class: "toolbar" }, search), body));

    const matches = (...texts) => !filter || texts.some((t) => t && String(t).includes(filter));
    const capped = (rows) => (rows.length > SHOWN ? [rows.slice(0, SHOWN), rows.length - SHOWN] : [rows, 0]);
    const more = (n) => (n ? h("p", { class: "hint" }, `and ${num(n)} more: narrow the filter`) : null);

    async function refresh() {
      search.hidden = tab === "publish";
      if (tab === "subscriptions") {
        const [rows, hidden] = capped((await api.get("/subscriptions")).filter((s) => matches(s.filter, s.client_id)));
        fill(body, table([
          { label: "client id", get: (s) => h("a", { href: `#/clients?id=${api.enc(s.client_id)}`, class: "mono" }, s.client_id) },
          { label: "filter", get: (s) => h("code", {}, s.filter) },
          { label: "QoS", num: true, get: (s) => s.qos },
          { label: "no local", get: (s) => (s.no_local ? "yes" : "") },
          { label: "retain as published", get: (s) => (s.retain_as_published ? "yes" : "") },
          { label: "subscription id", num: true, get: (s) => s.subscription_id ?? "" },
        ], rows, { empty: "No subscriptions." }), more(hidden));
      } else if (tab === "routes") {
        const [rows, hidden] = capped((await api.get("/topics")).filter((r) => matches(r.topic, r.node)));
        fill(body,
          h("p", { class: "hint" }, "A route says which node has subscribers to a filter; a message goes to every node with a matching route."),
          table([
            { label: "filter", get: (r) => h("code", {}, r.topic) },
            { label: "node", get: (r) => r.node },
          ], rows, { empty: "No routes." }), more(hidden));
      } else if (tab === "retained") {
        const [rows, hidden] = capped((await api.get("/retained")).filter((m) => matches(m.topic)));
        fill(body, table([
          { label: "topic", get: (m) => h("code", {}, m.topic) },
          { label: "payload", class: "truncate", get: (m) => h("span", { class: "mono", title: m.payload }, m.payload) },
          { label: "size", num: true, get: (m) => bytes(m.payload_bytes) },
          { label: "QoS", num: true, get: (m) => m.qos },
          { label: "", get: (m) => h("button", {
            class: "small danger", "data-action": "delete-retained",
            onclick: () => ctx.act(`Deleted the retained message on ${m.topic}`, async () => {
              if (!(await confirm("Delete retained message", `Delete the retained message on “${m.topic}”? New subscribers will no longer get it.`, "Delete"))) return;
              await api.del(`/retained/${m.topic.split("/").map(api.enc).join("/")}`);
              await refresh();
            }),
          }, "Delete") },
        ], rows, { key: (m) => m.topic, empty: "No retained messages." }), more(hidden));
      } else {
        renderPublish();
      }
    }

    function renderPublish() {
      if (body.querySelector("#publish-form")) return;
      const topic = h("input", { id: "publish-topic", placeholder: "a/topic", required: true });
      const payload = h("textarea", { id: "publish-payload", rows: 5, placeholder: "payload (text)" });
      const qos = h("select", { id: "publish-qos" }, [0, 1, 2].map((q) => h("option", { value: q }, `QoS ${q}`)));
      const retain = h("input", { type: "checkbox", id: "publish-retain" });
      const result = h("div", { class: "hint", id: "publish-result" });
      fill(body,
        h("form", {
          id: "publish-form",
          onsubmit: (e) => {
            e.preventDefault();
            ctx.act(null, async () => {
              const answer = await api.post("/publish", { topic: topic.value, payload: payload.value, qos: Number(qos.value), retain: retain.checked });
              fill(result, badge("published", "ok"), " ", `to ${answer.delivered ?? answer.subscribers ?? 0} local subscriber(s)`);
            });
          },
        },
        h("p", { class: "hint" }, "Published by the broker itself (no client id), as POST /api/v1/publish does."),
        h("div", { class: "form-row" }, field("Topic", topic), field("QoS", qos, true), h("label", { class: "check" }, retain, "retain")),
        field("Payload", payload),
        h("div", { class: "toolbar", style: "margin-top: 10px" }, h("button", { class: "primary", type: "submit", id: "publish-submit" }, "Publish"), result)));
    }

    ctx.every(3000, () => (tab === "publish" ? renderPublish() : refresh()));
  },
};
