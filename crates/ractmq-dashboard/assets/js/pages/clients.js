// Clients: every session on this node, searchable by client id, user name or peer address; the details of one
// (its subscriptions, queue and messages in flight); kick, or kick and ban.

import * as api from "../api.js";
import { h, fill, card, table, badge, kv, num, bytes, time, confirm, modal, field } from "../ui.js";

const PAGE_SIZE = 50;

export default {
  title: "Clients",
  icon: "⇄",
  render(view, ctx) {
    let query = ctx.params.get("q") ?? "";
    let selected = ctx.params.get("id");
    let page = 1;
    let onlyConnected = false;

    const search = h("input", { type: "search", id: "client-search", placeholder: "client id, user name or peer address", value: query });
    const connected = h("input", { type: "checkbox", id: "client-connected-only" });
    const list = h("div", { id: "clients-table" });
    const count = h("span", { class: "hint", id: "clients-count" });
    const pager = h("div", { class: "toolbar" });
    const details = h("div", { id: "client-details" });

    let debounce;
    const reload = () => ctx.act(null, refresh);
    search.addEventListener("input", () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => { query = search.value.trim(); page = 1; reload(); }, 250);
    });
    connected.addEventListener("change", () => { onlyConnected = connected.checked; page = 1; reload(); });

    fill(view,
      h("div", { class: "grid side" },
        h("section", { class: "card" },
          h("div", { class: "toolbar" }, search, h("label", { class: "check" }, connected, "connected only"), count),
          list, pager),
        details));

    const kick = (id) => ctx.act(`Kicked ${id}`, async () => {
      if (!(await confirm("Kick client", `Disconnect ${id} now (reason 0x98)? Its session stays; the client may reconnect.`, "Kick"))) return;
      await api.del(`/clients/${api.enc(id)}`);
      await refresh();
    });

    const kickAndBan = (id) => {
      const duration = h("select", { id: "ban-duration" },
        h("option", { value: "3600" }, "1 hour"), h("option", { value: "86400" }, "1 day"), h("option", { value: "" }, "until lifted"));
      const reason = h("input", { id: "ban-reason", value: "banned from the dashboard" });
      modal(`Kick and ban ${id}`, h("div", {},
        h("p", {}, "The client is disconnected and its client id refused until the ban ends (Security page to lift it)."),
        h("div", { class: "form-row" }, field("Ban for", duration), field("Reason", reason))),
      (close) => [
        h("button", { onclick: close }, "Cancel"),
        h("button", {
          class: "primary", "data-confirm": "yes",
          onclick: () => ctx.act(`Banned ${id}`, async () => {
            const body = { as: "clientid", who: id, reason: reason.value };
            if (duration.value) body.duration_s = Number(duration.value);
            await api.post("/banned", body);
            close();
            await refresh();
          }),
        }, "Kick and ban"),
      ]);
    };

    const show = (id) => {
      selected = id;
      history.replaceState(null, "", `#/clients?id=${api.enc(id)}${query ? `&q=${api.enc(query)}` : ""}`);
      return ctx.act(null, () => Promise.all([renderDetails(), refresh()]));
    };

    async function renderDetails() {
      if (!selected) {
        fill(details, card("Client", h("p", { class: "hint" }, "Select a client to see its session.")));
        return;
      }
      let c;
      try {
        c = await api.get(`/clients/${api.enc(selected)}`);
      } catch (e) {
        fill(details, card(selected, h("p", { class: "hint" }, e.message)));
        return;
      }
      const subs = await api.get(`/subscriptions?client_id=${api.enc(selected)}`).catch(() => []);
      fill(details, card(h("span", { class: "mono" }, c.client_id),
        h("div", {},
          kv([
            ["state", c.connected ? badge("connected", "ok") : badge("disconnected", "")],
            ["protocol", `MQTT ${c.protocol}`],
            ["user name", c.username ?? "–"],
            ["peer", c.peer ? h("code", {}, c.peer) : "–"],
            ["keepalive", c.keep_alive ? `${c.keep_alive} s` : "off"],
            ["connected at", time(c.connected_at)],
            ["session expiry", c.expiry_interval === 4294967295 ? "never" : `${num(c.expiry_interval)} s`],
            ["queued", `${num(c.queued)} (${bytes(c.queued_bytes)})`],
            ["in flight", num(c.inflight)],
            ["subscriptions", num(c.subscriptions)],
          ]),
          h("h3", {}, "Subscriptions"),
          table([
            { label: "filter", get: (s) => h("code", {}, s.filter) },
            { label: "QoS", num: true, get: (s) => s.qos },
            { label: "options", get: (s) => [s.no_local ? "no local" : "", s.retain_as_published ? "retain as published" : "", s.subscription_id ? `id ${s.subscription_id}` : ""].filter(Boolean).join(", ") },
          ], subs, { empty: "no subscriptions" }),
          h("div", { class: "toolbar", style: "margin-top: 14px" },
            h("button", { class: "danger", id: "detail-kick", disabled: !c.connected, onclick: () => kick(c.client_id) }, "Kick"),
            h("button", { class: "danger", id: "detail-ban", onclick: () => kickAndBan(c.client_id) }, "Kick and ban"))),
        h("button", { class: "ghost small", onclick: () => { selected = null; history.replaceState(null, "", "#/clients"); ctx.act(null, () => Promise.all([renderDetails(), refresh()])); } }, "close")));
    }

    async function refresh() {
      const params = new URLSearchParams({ page: String(page), limit: String(PAGE_SIZE) });
      if (query) params.set("q", query);
      if (onlyConnected) params.set("connected", "true");
      const answer = await api.get(`/clients?${params}`);
      const total = answer.meta.count;
      count.textContent = `${num(total)} ${total === 1 ? "session" : "sessions"}`;
      fill(list, table([
        { label: "client id", get: (c) => h("a", { href: `#/clients?id=${api.enc(c.client_id)}`, class: "mono client-id", onclick: (e) => { e.preventDefault(); show(c.client_id); } }, c.client_id) },
        { label: "state", get: (c) => (c.connected ? badge("connected", "ok") : badge("offline", "")) },
        { label: "user", get: (c) => c.username ?? "" },
        { label: "peer", get: (c) => h("code", {}, c.peer ?? "") },
        { label: "MQTT", get: (c) => c.protocol },
        { label: "subs", num: true, get: (c) => num(c.subscriptions) },
        { label: "queued", num: true, get: (c) => num(c.queued) },
        { label: "", get: (c) => h("div", { class: "actions" },
          h("button", { class: "small danger", "data-action": "kick", disabled: !c.connected, onclick: () => kick(c.client_id) }, "Kick")) },
      ], answer.data, { key: (c) => c.client_id, selected, onRow: (c) => show(c.client_id), empty: query ? `No session matches “${query}”.` : "No sessions on this node." }));
      const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
      fill(pager, pages > 1 ? [
        h("button", { class: "small", disabled: page <= 1, onclick: () => { page--; reload(); } }, "‹ previous"),
        h("span", { class: "hint" }, `page ${page} of ${pages}`),
        h("button", { class: "small", disabled: page >= pages, onclick: () => { page++; reload(); } }, "next ›"),
      ] : []);
    }

    ctx.every(2000, () => Promise.all([refresh(), renderDetails()]));
  },
};
