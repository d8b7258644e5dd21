// The management API, as the console calls it: the admin token (at /portal, the portal
// session's) from sessionStorage in the Authorization header, never in a URL; JSON in, JSON
// out; errors as ApiError. Also who the caller is, for the pages to offer only what it may do.

/** The console in one workspace (SPEC §13), opened by a portal session's link. */
export const PORTAL = window.location.pathname === "/portal";
const TOKEN_KEY = PORTAL ? "hookhub.portal_session" : "hookhub.admin_token";
// Where the token is kept when the browser refuses this page its storage (a portal in a
// third-party frame may be): in this page only, gone when it is reloaded.
let kept = null;

/** Who calls (GET /api/me): the admin until a portal session says otherwise. */
export const caller = { kind: "admin", workspace_id: null, can_write: true, expires_at: null };

export function canWrite() {
  return caller.can_write;
}

export class ApiError extends Error {
  constructor(status, code, message, details, where = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    // Where in a template the error is (422 invalid_template, template_error).
    this.line = where.line;
    this.column = where.column;
  }
}

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return kept;
  }
}

export function setToken(value) {
  try {
    sessionStorage.setItem(TOKEN_KEY, value);
  } catch {
    kept = value;
  }
}

export function forgetToken() {
  kept = null;
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* nothing was kept there */
  }
}

let onUnauthorized = () => {};

/** What to do when the API refuses the token (back to sign-in). */
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

function url(path, query) {
  const u = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  }
  return u.pathname + u.search;
}

/**
 * call("GET", "/api/integrations", {query: {limit: 20}})
 * call("POST", "/api/outgoing-webhooks", {json: {...}})
 * call("POST", "/api/imports", {form: formData})
 */
export async function call(method, path, { query, json, form, bearer, quiet401 = false } = {}) {
  const headers = { Accept: "application/json" };
  const secret = bearer ?? token();
  if (secret) headers.Authorization = `Bearer ${secret}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart boundary
  }
  let response;
  try {
    response = await fetch(url(path, query), {
      method,
      headers,
      body,
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    });
  } catch (err) {
    throw new ApiError(0, "network_error", `hookhub could not be reached (${err.message})`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    const err = new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || (typeof data === "string" && data) || response.statusText,
      error.details,
      error,
    );
    if (response.status === 401 && !quiet401) onUnauthorized(err);
    throw err;
  }
  return data;
}

export const get = (path, query) => call("GET", path, { query });
export const post = (path, json, query) => call("POST", path, { json, query });
export const patch = (path, json) => call("PATCH", path, { json });
export const del = (path) => call("DELETE", path);

/** Whether `candidate` is the admin token: one cheap authenticated read. */
/** The operator console is the admin's: a workspace key or a portal token is refused here
 * (a 401, as a wrong token), rather than opening a console of global pages it cannot read. */
export async function checkToken(candidate) {
  const me = await call("GET", "/api/me", { bearer: candidate, quiet401: true });
  if (me.kind !== "admin") throw new ApiError(401, "not_admin", "not the admin token");
}

export const enc = encodeURIComponent;
