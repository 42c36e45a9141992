// Security: the built-in user database (add, change password, delete), the ACL in force (and reloading its
// file), bans (add, lift) and flapping detection.

import * as api from "../api.js";
import { h, fill, card, table, badge, kv, time, num, confirm, modal, field } from "../ui.js";

export default {
  title: "Security",
  icon: "◈",
  render(view, ctx) {
    const users = h("div", { id: "security-users" });
    const acl = h("div", { id: "security-acl" });
    const bans = h("div", { id: "security-bans" });
    const flapping = h("div", { id: "security-flapping" });
    fill(view,
      h("div", { class: "grid two" }, card("Users", users), card("Bans", bans)),
      h("div", { class: "grid side" },
        card("ACL", acl, h("button", { class: "small", id: "acl-reload", onclick: () => ctx.act("ACL and password files read again", async () => { await api.post("/acl/reload"); await refresh(); }) }, "Reload files")),
        card("Flapping", flapping)));

    // Forms are built once, so a refresh does not wipe what the operator is typing.
    const name = h("input", { id: "user-name", placeholder: "name" });
    const password = h("input", { id: "user-password", type: "password", placeholder: "password", autocomplete: "new-password" });
    const superuser = h("input", { type: "checkbox", id: "user-superuser" });
    const userForm = h("form", {
      class: "form-row",
      onsubmit: (e) => {
        e.preventDefault();
        ctx.act(`Added user ${name.value}`, async () => {
          await api.post("/users", { name: name.value, password: password.value, superuser: superuser.checked });
          name.value = ""; password.value = ""; superuser.checked = false;
          await refresh();
        });
      },
    }, field("New user", name), field("Password", password), h("label", { class: "check" }, superuser, "superuser"), h("button", { class: "primary", type: "submit" }, "Add"));

    const banAs = h("select", { id: "ban-as" }, ["clientid", "username", "peerhost"].map((k) => h("option", { value: k }, k)));
    const banWho = h("input", { id: "ban-who", placeholder: "client id, user name or address/CIDR" });
    const banFor = h("input", { id: "ban-for", type: "number", min: 1, placeholder: "seconds (empty: until lifted)" });
    const banReason = h("input", { id: "ban-why", placeholder: "reason" });
    const banForm = h("form", {
      onsubmit: (e) => {
        e.preventDefault();
        ctx.act(`Banned ${banWho.value}`, async () => {
          const body = { as: banAs.value, who: banWho.value, reason: banReason.value };
          if (banFor.value) body.duration_s = Number(banFor.value);
          await api.post("/banned", body);
          banWho.value = ""; banReason.value = ""; banFor.value = "";
          await refresh();
        });
      },
    }, h("div", { class: "form-row" }, field("As", banAs, true), field("Who", banWho)),
    h("div", { class: "form-row" }, field("For", banFor), field("Reason", banReason), h("button", { class: "primary", type: "submit" }, "Ban")));

    const usersTable = h("div");
    const bansTable = h("div");
    fill(users, usersTable, userForm);
    fill(bans, bansTable, banForm);

    const changePassword = (user) => {
      const next = h("input", { type: "password", id: "new-password", autocomplete: "new-password" });
      const error = h("div", { class: "error-line" });
      modal(`New password for ${user}`, h("div", {}, field("Password", next), error), (close) => [
        h("button", { onclick: close }, "Cancel"),
        h("button", {
          class: "primary",
          onclick: async () => {
            try {
              await api.put(`/users/${api.enc(user)}`, { password: next.value });
              close();
              ctx.act(`Password of ${user} changed`, async () => {});
            } catch (e) { error.textContent = e.message; }
          },
        }, "Change"),
      ], false);
      next.focus();
    };

    async function refresh() {
      const [u, b, a, f] = await Promise.all([
        api.get("/users"),
        api.get("/banned"),
        api.get("/acl").catch((e) => ({ error: e.message })),
        api.get("/flapping").catch((e) => ({ error: e.message })),
      ]);
      fill(usersTable,
        table([
          { label: "user", get: (x) => h("span", { class: "mono" }, x.name) },
          { label: "", get: (x) => [x.superuser ? badge("superuser", "warn") : null, x.scram ? badge("SCRAM", "info") : null] },
          { label: "", get: (x) => h("div", { class: "actions" },
            h("button", { class: "small", onclick: () => changePassword(x.name) }, "Password"),
            h("button", { class: "small danger", onclick: () => ctx.act(`Deleted user ${x.name}`, async () => {
              if (!(await confirm("Delete user", `Delete ${x.name}? Clients logging in as this user are refused from now on.`, "Delete"))) return;
              await api.del(`/users/${api.enc(x.name)}`);
              await refresh();
            }) }, "Delete")) },
        ], u.data, { key: (x) => x.name, empty: "No users in the built-in database." }),
        h("p", { class: "hint" }, u.persisted ? "Kept in the node's store across restarts." : "In memory only (durability off)."));
      fill(bansTable, table([
        { label: "as", get: (x) => x.as },
        { label: "who", get: (x) => h("code", {}, x.who) },
        { label: "reason", get: (x) => x.reason },
        { label: "by", get: (x) => x.by },
        { label: "until", get: (x) => (x.until ? time(x.until) : "lifted by hand") },
        { label: "", get: (x) => h("button", { class: "small", onclick: () => ctx.act(`Lifted the ban of ${x.who}`, async () => {
          await api.del(`/banned/${api.enc(x.as)}/${api.enc(x.who)}`);
          await refresh();
        }) }, "Lift") },
      ], b.data, { key: (x) => `${x.as}:${x.who}`, empty: "No bans in force." }));
      fill(acl, a.error ? h("p", { class: "hint" }, a.error) : [
        kv([
          ["file", a.file ? h("code", {}, a.file) : "none (every client may publish and subscribe to anything not refused elsewhere)"],
          ["format", a.format ?? "–"],
          ["no rule matches", a.no_match ?? "–"],
          ["HTTP authorization", a.http_authz ? "on" : "off"],
          ["ACL from JWT claims", a.jwt_claims ? "on" : "off"],
        ]),
        h("h3", {}, `Rules, in the order tried (${num(a.count ?? (a.rules ?? []).length)})`),
        table([
          { label: "who", get: (r) => r.who ?? "" },
          { label: "permission", get: (r) => (r.permission ? badge(r.permission, r.permission === "allow" ? "ok" : "bad") : "") },
          { label: "action", get: (r) => r.action ?? "" },
          { label: "topic", get: (r) => h("code", {}, r.topic ?? r.text ?? "") },
        ], a.rules ?? [], { empty: "No rules." }),
      ]);
      fill(flapping, f.error ? h("p", { class: "hint" }, f.error) : [
        kv([
          ["detection", f.enabled ? badge("on", "ok") : badge("off", "")],
          ["threshold", f.config ? `${f.config.max_count} connects in ${f.config.window_s} s` : "–"],
          ["ban for", f.config ? `${f.config.ban_s} s` : "–"],
          ["clients being counted", num(f.tracked ?? 0)],
        ]),
        h("h3", {}, "Banned for flapping"),
        table([
          { label: "client id", get: (x) => h("code", {}, x.who) },
          { label: "until", get: (x) => time(x.until) },
        ], f.banned ?? [], { empty: "None." }),
      ]);
    }

    ctx.every(3000, refresh);
  },
};
