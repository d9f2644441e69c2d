/*
 * A library's own filters (licence, collection, price...), from the catalogue profile the
 * gateway serves in its page config: a text field for a term filter, two number fields
 * for a range. Without a profile there are none and this draws nothing.
 */

import { SERVER } from "./config.js";
import { el } from "./dom.js";

const container = document.getElementById("library-filters");
const inputs = new Map(); // API field name -> input

function field(name, label, type) {
  const wrap = el("div", "field");
  const input = document.createElement("input");
  input.type = type;
  input.id = `library-${name}`;
  input.name = name;
  input.placeholder = "Any";
  input.dataset.libraryFilter = name;
  if (type === "number") input.step = "any";
  const caption = el("label", null, label);
  caption.htmlFor = input.id;
  wrap.append(caption, input);
  inputs.set(name, input);
  return wrap;
}

/** Draw the controls once, at start; `onChange` runs a new search. */
export function buildLibraryFilters(onChange) {
  const parts = [];
  for (const filter of SERVER.filters) {
    if (filter.kind === "range") {
      const group = el("fieldset", "filter-group");
      const row = el("div", "filter-row");
      row.append(field(`${filter.name}_min`, "From", "number"), field(`${filter.name}_max`, "To", "number"));
      group.append(el("legend", null, filter.label), row);
      parts.push(group);
    } else {
      parts.push(field(filter.name, filter.label, "text"));
    }
  }
  container.replaceChildren(...parts);
  for (const input of inputs.values()) input.addEventListener("change", onChange);
}

/** The filled-in ones, as API fields. */
export function libraryFilterParams() {
  const params = {};
  for (const [name, input] of inputs) {
    const value = input.value.trim();
    if (value && input.validity.valid) params[name] = value;
  }
  return params;
}

export function activeLibraryFilters() {
  return Object.keys(libraryFilterParams()).length;
}

export function clearLibraryFilters() {
  for (const input of inputs.values()) input.value = "";
}

/** A term filter's facet: is it the value filtered on, and set or clear it. */
export function isLibraryFacet(name) {
  return SERVER.filters.some((f) => f.name === name && f.kind === "term");
}

export function libraryFacetActive(name, value) {
  const input = inputs.get(name);
  return Boolean(input) && input.value.trim() === String(value);
}

export function toggleLibraryFacet(name, value) {
  const input = inputs.get(name);
  if (!input) return false;
  input.value = libraryFacetActive(name, value) ? "" : String(value);
  return true;
}

export function libraryFilterLabel(name) {
  const filter = SERVER.filters.find((f) => f.name === name);
  return filter ? filter.label : null;
}
