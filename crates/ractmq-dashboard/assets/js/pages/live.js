// Live traffic: subscribe to a filter and watch messages arrive. The browser is an MQTT client of the node's
// own WebSocket listener, through MQTT.js: what it sees is what any web application subscribed there sees.

import mqtt from "../../vendor/mqtt.esm.js";
import * as api from "../api.js";
import { h, fill, card, table, badge, num, bytes, field } from "../ui.js";

const KEEP = 500;
const decoder = new TextDecoder("utf-8", { fatal: false });

export default {
  title: "Live traffic",
  nav: "Live traffic",
  icon: "≋",
  render(view, ctx) {
    let client = null;
    let messages = [];
    let received = 0;
    let paused = false;

    const url = h("input", { id: "live-url", placeholder: "ws://host:port/mqtt" });
    const filter = h("input", { id: "live-filter", value: ctx.params.get("filter") ?? "#" });
    const qos = h("select", { id: "live-qos" }, [0, 1, 2].map((q) => h("option", { value: q }, `QoS ${q}`)));
    const username = h("input", { id: "live-username", placeholder: "if the node asks", autocomplete: "off" });
    const password = h("input", { id: "live-password", type: "password", autocomplete: "off" });
    const state = h("span", { id: "live-state" }, badge("not connected", ""));
    const count = h("span", { class: "hint", id: "live-count" }, "0 messages");
    const go = h("button", { class: "primary", type: "submit", id: "live-subscribe" }, "Subscribe");
    const stop = h("button", { type: "button", id: "live-stop", disabled: true, onclick: () => disconnect("stopped") }, "Stop");
    const pause = h("button", { type: "button", id: "live-pause", onclick: () => { paused = !paused; pause.textContent = paused ? "Resume" : "Pause"; if (!paused) draw(); } }, "Pause");
    const clear = h("button", { type: "button", onclick: () => { messages = []; received = 0; draw(); } }, "Clear");
    const list = h("div", { class: "messages", id: "live-messages" });

    fill(view,
      card("Subscribe", h("form", {
        onsubmit: (e) => { e.preventDefault(); connect(); },
      },
      h("div", { class: "form-row" }, field("WebSocket listener", url), field("Filter", filter), field("QoS", qos, true)),
      h("div", { class: "form-row" }, field("MQTT user name", username), field("MQTT password", password), go, stop, state))),
      card("Messages", list, count, pause, clear));

    ctx.act(null, async () => {
      const listeners = await api.get("/listeners");
      const preferred = location.protocol === "https:" ? ["wss", "ws"] : ["ws", "wss"];
      const ws = preferred.map((t) => listeners.find((l) => l.transport === t && l.running)).find(Boolean);
      if (!ws) {
        fill(state, badge("no WebSocket listener", "warn"), " ", h("span", { class: "hint" }, "start the node with --ws-listen (e.g. 127.0.0.1:8083)"));
        return;
      }
      const [host, port] = splitAddr(ws.bound);
      const shownHost = host === "0.0.0.0" || host === "::" ? location.hostname : host;
      const scheme = ws.transport === "wss" ? "wss" : "ws";
      url.value = `${scheme}://${shownHost.includes(":") ? `[${shownHost}]` : shownHost}:${port}${ws.websocket_path ?? "/mqtt"}`;
    });

    function connect() {
      disconnect();
      const options = {
        clientId: `ractmq-dashboard-${Math.random().toString(16).slice(2, 10)}`,
        protocolVersion: 5,
        clean: true,
        reconnectPeriod: 0,
        connectTimeout: 10_000,
      };
      if (username.value) options.username = username.value;
      if (password.value) options.password = password.value;
      fill(state, badge("connecting", "warn"));
      const c = mqtt.connect(url.value, options);
      client = c;
      go.disabled = true;
      stop.disabled = false;
      c.on("connect", () => {
        if (client !== c) return;
        c.subscribe(filter.value, { qos: Number(qos.value) }, (err, granted) => {
          if (client !== c) return;
          const code = granted?.[0]?.qos;
          if (err || code === undefined || code >= 0x80) {
            fill(state, badge(`subscription refused${code !== undefined ? ` (0x${code.toString(16)})` : ""}`, "bad"));
            return;
          }
          fill(state, badge("subscribed", "ok"), " ", h("code", {}, filter.value), h("span", { class: "hint" }, ` as ${options.clientId}`));
        });
      });
      c.on("message", (topic, payload, packet) => {
        if (client !== c) return;
        received++;
        messages.unshift({ at: new Date(), topic, qos: packet.qos, retain: packet.retain, size: payload.length, text: decoder.decode(payload) });
        if (messages.length > KEEP) messages.length = KEEP;
        if (!paused) drawSoon();
      });
      c.on("error", (err) => { if (client === c) fill(state, badge(`error: ${err.message}`, "bad")); });
      c.on("close", () => {
        if (client !== c) return;
        if (!state.textContent.startsWith("error")) fill(state, badge("disconnected", ""));
        go.disabled = false;
        stop.disabled = true;
      });
    }

    function disconnect(why) {
      const c = client;
      client = null;
      if (c) c.end(true);
      go.disabled = false;
      stop.disabled = true;
      if (why) fill(state, badge(why, ""));
    }

    // A burst of messages redraws the list once per frame, not once per message.
    let drawQueued = false;
    function drawSoon() {
      if (drawQueued) return;
      drawQueued = true;
      requestAnimationFrame(() => { drawQueued = false; if (ctx.active) draw(); });
    }

    function draw() {
      count.textContent = `${num(received)} message${received === 1 ? "" : "s"}${received > KEEP ? ` (last ${KEEP} shown)` : ""}`;
      fill(list, table([
        { label: "time", get: (m) => m.at.toLocaleTimeString() },
        { label: "topic", get: (m) => h("code", { class: "live-topic" }, m.topic) },
        { label: "QoS", num: true, get: (m) => m.qos },
        { label: "retained", get: (m) => (m.retain ? badge("retained", "info") : "") },
        { label: "size", num: true, get: (m) => bytes(m.size) },
        { label: "payload", class: "payload", get: (m) => h("span", { class: "live-payload", title: m.text }, m.text) },
      ], messages, { empty: "Nothing yet. Messages matching the filter appear here as they are published." }));
    }

    draw();
    ctx.onLeave(() => disconnect());
  },
};

function splitAddr(addr) {
  const i = addr.lastIndexOf(":");
  return [addr.slice(0, i).replace(/^\[|\]$/g, ""), addr.slice(i + 1)];
}
