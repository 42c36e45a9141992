// Small DOM helpers every page uses. Text from the broker (client ids, topics, payloads) only ever becomes a
// text node, never markup: `h` has no way to set innerHTML.

/** An element: h("button", {class: "primary", onclick: f}, "Save"). Children may be strings, nodes, arrays, null. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = !!value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An SVG element (the cluster picture). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

/** Replace everything inside `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));

export function rate(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  if (n >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return n >= 100 ? Math.round(n).toString() : String(Number(n.toFixed(n < 10 ? 2 : 1)));
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const d = Math.floor(seconds / 86400), hh = Math.floor((seconds % 86400) / 3600);
  const mm = Math.floor((seconds % 3600) / 60), ss = Math.floor(seconds % 60);
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${ss}s`;
  return `${ss}s`;
}

/** A Unix time in seconds as local date and time. */
export function time(unixSeconds) {
  if (!unixSeconds) return "–";
  return new Date(unixSeconds * 1000).toLocaleString();
}

export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}` }, text);
}

export function dot(kind) {
  return h("span", { class: `dot ${kind}` });
}

export function tile(label, value, id) {
  return h("div", { class: "tile" }, h("div", { class: "label" }, label), h("div", { class: "value", id }, value));
}

/** A card with a heading, optional buttons on the right, and a body. */
export function card(title, body, ...tools) {
  return h("section", { class: "card" },
    h("div", { class: "card-head" }, h("h2", {}, title), h("span", { class: "spacer" }), ...tools),
    body);
}

/**
 * A table: columns are {label, get: row => text|node, num: right-aligned}; `key` names each row (data-key),
 * which tests and links use.
 */
export function table(columns, rows, { empty = "Nothing here.", key, onRow, selected } = {}) {
  const head = h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : "" }, c.label)));
  const body = rows.length
    ? rows.map((row) => {
      const k = key ? key(row) : undefined;
      const tr = h("tr", { "data-key": k, class: selected !== undefined && k === selected ? "selected" : "" },
        columns.map((c) => h("td", { class: [c.num ? "num" : "", c.class || ""].join(" ").trim() }, c.get(row))));
      if (onRow) {
        tr.style.cursor = "pointer";
        tr.addEventListener("click", (e) => { if (!e.target.closest("button, a, input")) onRow(row); });
      }
      return tr;
    })
    : [h("tr", {}, h("td", { class: "empty", colspan: columns.length }, empty))];
  return h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, head), h("tbody", {}, body)));
}

export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "–")]));
}

export function toast(message, kind = "") {
  const el = h("div", { class: `toast ${kind}` }, message);
  document.getElementById("toasts").append(el);
  setTimeout(() => el.remove(), kind === "bad" ? 7000 : 3500);
}

/** Ask before doing something that cannot be undone; resolves true for yes. */
export function confirm(title, text, yes = "Confirm", danger = true) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm" });
    const done = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    fill(dialog,
      h("h2", {}, title),
      h("p", {}, text),
      h("div", { class: "dialog-actions" },
        h("button", { onclick: () => done(false) }, "Cancel"),
        h("button", { class: danger ? "primary danger-fill" : "primary", onclick: () => done(true), "data-confirm": "yes" }, yes)));
    dialog.addEventListener("cancel", () => resolve(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A modal with any body; returns {dialog, close}. */
export function modal(title, body, actions, wide = true) {
  const dialog = h("dialog", { class: wide ? "wide" : "" });
  const close = () => { dialog.close(); dialog.remove(); };
  fill(dialog, h("h2", {}, title), body, h("div", { class: "dialog-actions" }, actions(close)));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, close };
}

/** Tabs: [{id, label}], the active id, and what to do on a switch. */
export function tabs(list, active, onSwitch) {
  return h("div", { class: "tabs", role: "tablist" }, list.map((t) =>
    h("button", { class: t.id === active ? "active" : "", role: "tab", "data-tab": t.id, onclick: () => onSwitch(t.id) }, t.label)));
}

export function field(label, input, narrow = false) {
  return h("label", { class: `field ${narrow ? "narrow" : ""}` }, label, input);
}
