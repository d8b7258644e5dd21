// The provider catalog as the console knows it: `GET /api/provider-catalog` (SPEC §15),
// asked once a token is in hand (any valid key sees the same one). Each entry's name,
// category, capabilities, settings, verification, setup steps and docs link come from
// there; the console's own are the icons' colours alone (console.css).

import { get } from "./api.js";
import { h } from "./dom.js";

let entries = new Map();
let loading = null;

/** The catalog, asked once; asked again after a failure. */
export function loadCatalog() {
  if (!loading) {
    loading = get("/api/provider-catalog").then(
      (catalog) => {
        entries = new Map(catalog.items.map((entry) => [entry.provider, entry]));
        return entries;
      },
      (err) => {
        loading = null;
        throw err;
      },
    );
  }
  return loading;
}

/** Every provider of the catalog, by name as a person reads it. */
export function catalogEntries() {
  return [...entries.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export function catalogEntry(provider) {
  return entries.get(provider) || null;
}

/** The providers that can do `capability` (oauth, sync, …), by their names. */
export function providersThat(capability) {
  return catalogEntries().filter((entry) => entry.capabilities.includes(capability));
}

export function providerTitle(provider) {
  return entries.get(provider)?.name || String(provider);
}

/** A provider's icon: its initial on its colour (no image fetched, nothing inline). */
export function providerIcon(provider) {
  const title = providerTitle(provider || "?");
  // A class of letters alone: a provider's name is an id of the catalog's, but a class
  // made of it must still be one class.
  const key = /^[a-z0-9_]+$/.test(String(provider)) ? provider : "other";
  return h("span", { class: `picon picon-${key}`, role: "img", "aria-label": title }, title.slice(0, 1).toUpperCase());
}
