// The login page: user name and password (--api-user) or the API token (--api-token), whichever the node takes.
// A good login gives a session token the API accepts from then on; the password is not kept in the browser.

import * as api from "./api.js";
import { h, fill } from "./ui.js";

export function showLogin(screen, options, done) {
  const byUser = options.users !== false;
  const byToken = !!options.token;
  const error = h("div", { class: "error-line", id: "login-error" });
  const username = h("input", { id: "login-username", autocomplete: "username", placeholder: "user name" });
  const password = h("input", { id: "login-password", type: "password", autocomplete: "current-password", placeholder: "password" });
  const tokenInput = h("input", { id: "login-token", type: "password", autocomplete: "off", placeholder: "API token" });
  let mode = byUser ? "user" : "token";

  const submit = async (e) => {
    e.preventDefault();
    error.textContent = "";
    const credentials = mode === "user"
      ? { username: username.value, password: password.value }
      : { token: tokenInput.value };
    try {
      await api.login(credentials);
      screen.hidden = true;
      done();
    } catch (err) {
      error.textContent = err.message;
    }
  };

  const form = h("form", { id: "login-form", onsubmit: submit });
  const render = () => {
    fill(form,
      mode === "user"
        ? [h("label", { class: "field" }, "User name", username), h("label", { class: "field" }, "Password", password)]
        : [h("label", { class: "field" }, "API token", tokenInput)],
      error,
      h("button", { class: "primary", type: "submit", id: "login-submit" }, "Log in"),
      byUser && byToken
        ? h("button", { type: "button", class: "ghost", onclick: () => { mode = mode === "user" ? "token" : "user"; render(); } },
          mode === "user" ? "Use an API token instead" : "Use a user name and password instead")
        : null);
  };
  render();
  fill(screen, h("div", { class: "login-card" },
    h("h1", {}, h("img", { src: "/assets/favicon.svg", alt: "" }), "ractmq"),
    h("div", { class: "hint" }, "This node's API needs credentials: the --api-user or --api-token it was started with."),
    form));
  screen.hidden = false;
  (mode === "user" ? username : tokenInput).focus();
}
