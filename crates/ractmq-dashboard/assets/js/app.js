// The dashboard's frame: login, the sidebar, the node summary in the top bar, and a hash router that shows one
// page at a time. A page is a module with `title` and `render(view, ctx)`; `ctx.every` polls while the page is
// shown and stops when the user leaves it.

import * as api from "./api.js";
import { h, fill, dot, duration, toast } from "./ui.js";
import { showLogin } from "./login.js";
import overview from "./pages/overview.js";
import clients from "./pages/clients.js";
import topics from "./pages/topics.js";
import cluster from "./pages/cluster.js";
import supervision from "./pages/supervision.js";
import security from "./pages/security.js";
import bridges from "./pages/bridges.js";
import rules from "./pages/rules.js";
import live from "./pages/live.js";

const PAGES = { overview, clients, topics, cluster, supervision, security, bridges, rules, live };

let leaving = [];
let loginOptions = { required: false };

function parseHash() {
  // /#/clients, or /clients (the server answers each page's path with this page too).
  const raw = location.hash ? location.hash.replace(/^#\/?/, "") : location.pathname.replace(/^\//, "") + location.search;
  const [path, query = ""] = raw.split("?");
  const name = path.split("/")[0] || "overview";
  return { name: PAGES[name] ? name : "overview", params: new URLSearchParams(query) };
}

function leave() {
  for (const f of leaving) {
    try { f(); } catch { /* a page's cleanup failing must not stop the next page */ }
  }
  leaving = [];
}

/** Report a failure of a page's request in the page, never as an uncaught error. */
function report(view, error) {
  if (error instanceof api.ApiError && error.status === 401) return;
  let line = view.querySelector(":scope > .error-line.page-error");
  if (!line) {
    line = h("div", { class: "error-line page-error" });
    view.prepend(line);
  }
  line.textContent = error.message || String(error);
}

function clearReport(view) {
  view.querySelector(":scope > .error-line.page-error")?.remove();
}

function route() {
  leave();
  const { name, params } = parseHash();
  const page = PAGES[name];
  document.title = `${page.title} · ractmq`;
  document.getElementById("page-title").textContent = page.title;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  const view = document.getElementById("view");
  view.replaceChildren();
  view.dataset.page = name;
  let active = true;
  leaving.push(() => { active = false; });
  const ctx = {
    params,
    /** Run `f` now and every `ms` while this page is shown; errors appear in the page. */
    every(ms, f) {
      let running = false;
      const tick = async () => {
        if (!active || running) return;
        running = true;
        try { await f(); clearReport(view); } catch (e) { if (active) report(view, e); } finally { running = false; }
      };
      tick();
      const id = setInterval(tick, ms);
      leaving.push(() => clearInterval(id));
    },
    onLeave(f) { leaving.push(f); },
    /** Run an action a button started: a toast says how it went. */
    async act(what, f) {
      try {
        const out = await f();
        if (what) toast(what, "ok");
        return out;
      } catch (e) {
        if (!(e instanceof api.ApiError && e.status === 401)) toast(e.message || String(e), "bad");
        return undefined;
      }
    },
    get active() { return active; },
  };
  try {
    page.render(view, ctx);
  } catch (e) {
    report(view, e);
  }
}

function buildNav() {
  const nav = document.getElementById("nav");
  fill(nav, Object.entries(PAGES).map(([name, page]) =>
    h("a", { href: `#/${name}`, "data-page": name }, h("span", { class: "icon", "aria-hidden": "true" }, page.icon), page.nav || page.title)));
}

async function refreshSummary() {
  const summary = document.getElementById("node-summary");
  try {
    const s = await api.get("/status");
    fill(summary,
      h("span", { id: "node-name" }, dot("ok"), h("strong", {}, s.node)),
      h("span", {}, `v${s.version}`),
      h("span", {}, `up ${duration(s.uptime_s)}`),
      h("span", {}, s.clustered ? "clustered" : "single node"));
    document.getElementById("sidebar-foot").textContent = `${s.node} · ${s.mqtt_listen ?? ""}`;
  } catch (e) {
    if (!(e instanceof api.ApiError && e.status === 401)) fill(summary, h("span", {}, dot("bad"), e.message));
  }
}

let summaryTimer = null;

function showShell() {
  document.getElementById("login-screen").hidden = true;
  document.getElementById("shell").hidden = false;
  document.getElementById("logout").hidden = !loginOptions.required;
  refreshSummary();
  clearInterval(summaryTimer);
  summaryTimer = setInterval(refreshSummary, 5000);
  route();
}

function requireLogin() {
  leave();
  clearInterval(summaryTimer);
  document.getElementById("shell").hidden = true;
  showLogin(document.getElementById("login-screen"), loginOptions, showShell);
}

async function boot() {
  buildNav();
  api.onUnauthorized(requireLogin);
  window.addEventListener("hashchange", () => { if (!document.getElementById("shell").hidden) route(); });
  document.getElementById("logout").addEventListener("click", async () => {
    try { await api.logout(); } catch { /* the session is gone either way */ }
    requireLogin();
  });
  try {
    loginOptions = await api.loginOptions();
  } catch (e) {
    // The node could not say: ask the API itself; a 401 from it means a login is needed.
    loginOptions = { required: false, token: true, users: true };
    try { await api.get("/status"); } catch { loginOptions.required = true; }
  }
  if (loginOptions.required && !api.token()) requireLogin();
  else showShell();
}

boot();
