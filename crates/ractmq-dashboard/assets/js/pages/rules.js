// Rules: each rule's SQL and counters (matched, passed, failed, no result; per action success and failed);
// create, edit, enable, disable and delete; and the rule tester, which shows what a rule would output for a
// message without publishing anything (POST /api/v1/rule_test).

import * as api from "../api.js";
import { h, fill, card, table, badge, num, confirm, modal, field } from "../ui.js";

const EXAMPLE_SQL = 'SELECT payload.temp AS t, clientid FROM "sensors/#" WHERE payload.temp > 30';
const EXAMPLE_ACTIONS = [{ republish: { topic: "alerts/${clientid}", payload: '{"t": ${t}}', qos: 1 } }];
const EVENTS = ["", "$events/client_connected", "$events/client_disconnected", "$events/session_subscribed",
  "$events/session_unsubscribed", "$events/message_delivered", "$events/message_acked", "$events/message_dropped"];

export default {
  title: "Rules",
  icon: "ƒ",
  render(view, ctx) {
    const list = h("div", { id: "rules-table" });
    fill(view,
      card("Rules", list, h("button", { class: "primary small", id: "rule-create", onclick: () => editor(null) }, "New rule")),
      tester());

    function editor(existing) {
      const name = h("input", { id: "rule-name", value: existing?.name ?? "", disabled: !!existing, placeholder: "letters, digits, - _ ." });
      const description = h("input", { id: "rule-description", value: existing?.description ?? "" });
      const sql = h("textarea", { id: "rule-sql", rows: 4 });
      const actions = h("textarea", { id: "rule-actions", rows: 8 });
      const enabled = h("input", { type: "checkbox", id: "rule-enabled", checked: existing ? existing.enabled : true });
      const error = h("div", { class: "error-line", id: "rule-error" });
      sql.value = existing?.sql ?? EXAMPLE_SQL;
      actions.value = JSON.stringify(existing?.actions ?? EXAMPLE_ACTIONS, null, 2);
      modal(existing ? `Edit rule ${existing.name}` : "New rule", h("div", {},
        h("div", { class: "form-row" }, field("Name", name), field("Description", description), h("label", { class: "check" }, enabled, "enabled")),
        field("SQL", sql),
        field("Actions (JSON: republish, bridge or log; docs/rules.md)", actions),
        error),
      (close) => [
        h("button", { onclick: close }, "Cancel"),
        h("button", {
          class: "primary", id: "rule-save",
          onclick: async () => {
            error.textContent = "";
            let parsed;
            try { parsed = JSON.parse(actions.value); } catch (e) { error.textContent = `actions are not JSON: ${e.message}`; return; }
            const body = { ...(existing?.config ?? {}), name: name.value.trim(), sql: sql.value, description: description.value, actions: parsed, enabled: enabled.checked };
            try {
              await api.saveItem("rules", existing?.name, body);
              close();
              await ctx.act(existing ? `Rule ${body.name} saved` : `Rule ${body.name} created`, refresh);
            } catch (e) { error.textContent = e.message; }
          },
        }, existing ? "Save" : "Create"),
      ]);
    }

    const edit = (name) => ctx.act(null, async () => {
      const r = await api.get(`/rules/${api.enc(name)}`);
      editor({ name: r.name, sql: r.sql, description: r.description, enabled: r.enabled, actions: r.config?.actions ?? [], config: r.config });
    });

    const toggle = (r) => ctx.act(`Rule ${r.name} ${r.enabled ? "disabled" : "enabled"}`, async () => {
      await api.post(`/rules/${api.enc(r.name)}/${r.enabled ? "disable" : "enable"}`);
      await refresh();
    });

    const remove = (name) => ctx.act(`Rule ${name} deleted`, async () => {
      if (!(await confirm("Delete rule", `Delete ${name}? It stops running on every node.`, "Delete"))) return;
      await api.del(`/rules/${api.enc(name)}`);
      await refresh();
    });

    async function refresh() {
      const all = await api.get("/rules");
      fill(list, table([
        { label: "rule", get: (r) => h("div", {}, h("strong", {}, r.name), r.description ? h("div", { class: "hint" }, r.description) : null) },
        { label: "SQL", class: "truncate", get: (r) => h("code", { title: r.sql }, r.sql) },
        { label: "state", get: (r) => (r.enabled ? badge("enabled", "ok") : badge("disabled", "")) },
        { label: "matched", num: true, get: (r) => h("span", { class: "rule-matched" }, num(r.matched)) },
        { label: "passed", num: true, get: (r) => h("span", { class: "rule-passed" }, num(r.passed)) },
        { label: "failed", num: true, get: (r) => num(r.failed) },
        { label: "no result", num: true, get: (r) => num(r.no_result) },
        { label: "actions", get: (r) => r.actions.map((a) => h("div", { class: "hint" }, `${a.kind}: ${num(a.success)} ok, ${num(a.failed)} failed${a.retried ? `, ${num(a.retried)} retried` : ""}`)) },
        { label: "", get: (r) => h("div", { class: "actions" },
          h("button", { class: "small", onclick: () => toggle(r) }, r.enabled ? "Disable" : "Enable"),
          h("button", { class: "small", onclick: () => edit(r.name) }, "Edit"),
          h("button", { class: "small danger", onclick: () => remove(r.name) }, "Delete")) },
      ], all, { key: (r) => r.name, empty: "No rules yet. Create one, or define [[rules]] in the configuration file." }));
    }

    function tester() {
      const sql = h("textarea", { id: "test-sql", rows: 3 });
      sql.value = EXAMPLE_SQL;
      const topic = h("input", { id: "test-topic", value: "sensors/room-1" });
      const payload = h("textarea", { id: "test-payload", rows: 3 });
      payload.value = '{"temp": 31.5}';
      const clientid = h("input", { id: "test-clientid", value: "device-1" });
      const event = h("select", { id: "test-event" }, EVENTS.map((e) => h("option", { value: e }, e || "a published message")));
      const out = h("div", { id: "test-output" });
      const run = async (e) => {
        e.preventDefault();
        const body = { sql: sql.value, topic: topic.value, payload: payload.value, clientid: clientid.value || null };
        if (event.value) body.event = event.value;
        try {
          const r = await api.post("/rule_test", body);
          fill(out,
            r.outcome === "rows" ? badge(`${r.rows.length} row${r.rows.length === 1 ? "" : "s"}`, "ok")
              : r.outcome === "no_result" ? badge("no result: WHERE was false", "warn") : badge("failed", "bad"),
            r.error ? h("div", { class: "error-line" }, r.error) : null,
            r.rows.length ? h("pre", { class: "output" }, JSON.stringify(r.rows, null, 2)) : null);
        } catch (err) {
          fill(out, h("div", { class: "error-line" }, err.message));
        }
      };
      return card("Rule tester", h("form", { onsubmit: run },
        h("p", { class: "hint" }, "What a rule outputs for one message or event. Nothing is published."),
        field("SQL", sql),
        h("div", { class: "form-row" }, field("Source", event), field("Topic", topic), field("Client id", clientid)),
        field("Payload", payload),
        h("div", { class: "toolbar", style: "margin-top: 10px" }, h("button", { class: "primary", type: "submit", id: "test-run" }, "Test")),
        out));
    }

    ctx.every(2000, refresh);
  },
};
