/*
 * The page's elements, looked up once, and small DOM helpers. All data goes into the DOM
 * through textContent / attributes, never innerHTML. Modules are deferred, so the
 * document is parsed by the time this runs.
 */

import { NUMBER_FIELDS } from "./config.js";

const byId = (id) => document.getElementById(id);

export const els = {
  searchForm: byId("search-form"),
  dropzone: byId("dropzone"),
  fileInput: byId("file-input"),
  pickFile: byId("pick-file"),
  imageUrl: byId("image-url"),
  q: byId("q"),
  queryPreview: byId("query-preview"),
  queryImage: byId("query-image"),
  queryLabel: byId("query-label"),
  clearImage: byId("clear-image"),
  filtersForm: byId("filters-form"),
  filtersPanel: byId("filters-panel"),
  filtersToggle: byId("filters-toggle"),
  filterCount: byId("filter-count"),
  resetFilters: byId("reset-filters"),
  format: byId("format"),
  orientation: byId("orientation"),
  colorButtons: Array.from(document.querySelectorAll(".color-filter")),
  palettePicker: byId("palette-picker"),
  paletteAdd: byId("palette-add"),
  paletteChosen: byId("palette-chosen"),
  paletteClear: byId("palette-clear"),
  facets: byId("facets"),
  status: byId("status"),
  error: byId("error"),
  notice: byId("notice"),
  results: byId("results"),
  resultsHeading: byId("results-heading"),
  empty: byId("empty"),
  more: byId("more"),
};

// API field name -> its number input.
export const numberInputs = Object.fromEntries(
  Object.entries(NUMBER_FIELDS).map(([name, id]) => [name, byId(id)]),
);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

export function isEditable(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  return ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}

export function prefersReducedMotion() {
  return window.matchMedia("(prefers-reduced-motion: reduce)").matches;
}

export function setSelectValue(select, value) {
  const wanted = String(value);
  const exists = Array.from(select.options).some((option) => option.value === wanted);
  if (exists) select.value = wanted;
  return exists;
}
