// The sandbox, when the stack runs with it: GET /sandbox/api/state on this origin answers
// 200 with its state, which names the hookhub workspace it plays in; without the sandbox
// the edge answers 204 (a 404 was an error in the browser's console on every page). Asked once, at start, without the token (the sandbox is not
// the management API). Its workspace becomes the forms' default until one has been used.

import { setSandboxWorkspace } from "./dom.js";

const STATE = "/sandbox/api/state";
const WAIT_MS = 3000; // a sandbox that does not answer by then is not waited for

async function ask() {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), WAIT_MS);
  try {
    const response = await fetch(STATE, {
      headers: { Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
      signal: controller.signal,
    });
    if (response.status !== 200) return null;
    const state = await response.json();
    if (!state || typeof state !== "object") return null;
    const workspace = typeof state.workspace_id === "string" ? state.workspace_id.trim() : "";
    setSandboxWorkspace(workspace);
    return { workspace_id: workspace };
  } catch {
    return null; // no sandbox, or not one that answers JSON
  } finally {
    clearTimeout(timer);
  }
}

let asked = null;

/** The sandbox ({workspace_id}) or null: asked the first time only. */
export function sandbox() {
  if (!asked) asked = ask();
  return asked;
}
