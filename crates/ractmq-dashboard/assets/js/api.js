// The REST API, as the dashboard calls it: every request under /api/v1, with the session token from the login
// page, JSON in and out, and the API's one-line errors as exceptions. A 401 sends the user to the login page.

const BASE = "/api/v1";
const TOKEN_KEY = "ractmq.session";

let unauthorized = () => {};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Called on any 401: the session ended or credentials are needed. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(BASE + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  // A 401 means the session is gone, except from the login itself, which says why on the login page.
  if (response.status === 401 && path !== "/login") {
    setToken(null);
    unauthorized();
  }
  if (!response.ok) {
    const message = data && typeof data === "object" && data.error ? data.error : `${method} ${path}: HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

export const get = (path) => request("GET", path);
export const post = (path, body = {}) => request("POST", path, body);
export const put = (path, body) => request("PUT", path, body);
export const del = (path) => request("DELETE", path);

/** Create `body` in `/collection` (POST), or replace the item named `existing` there (PUT). */
export function saveItem(collection, existing, body) {
  return existing ? put(`/${collection}/${enc(existing)}`, body) : post(`/${collection}`, body);
}

/** A path segment or query value, encoded (client ids and topics hold anything, '/' and '#' included). */
export const enc = encodeURIComponent;

/** What the login page needs to know: is a login required, and with a token or user name and password. */
export async function loginOptions() {
  return get("/login");
}

/** Log in with {username, password} or {token}; keeps the session token the API returns. */
export async function login(credentials) {
  const answer = await post("/login", credentials);
  setToken(answer.token);
  return answer;
}

export async function logout() {
  try { await post("/logout"); } finally { setToken(null); }
}
