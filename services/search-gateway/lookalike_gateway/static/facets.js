/*
 * The "Refine" counts from a done line, in the groups and order the server counts them;
 * a facet clicked applies it as a filter, clicked again removes it.
 */

import { FACET_TITLES, SERVER } from "./config.js";
import { el, els, numberInputs, setSelectValue } from "./dom.js";
import { onFiltersChanged, readInteger, selectedColors, setColorPressed } from "./filters.js";
import {
  isLibraryFacet, libraryFacetActive, libraryFilterLabel, toggleLibraryFacet,
} from "./library-filters.js";
import { search } from "./search.js";
import { capitalise, formatCount, plural, present } from "./text.js";

function facetLabel(key, value) {
  switch (key) {
    case "format": return String(value).toUpperCase();
    case "decade": return `${value}s`;
    default: return capitalise(value);
  }
}

export function renderFacets(facets) {
  const groups = [];
  for (const key of SERVER.facets) {
    const values = Array.isArray(facets[key])
      ? facets[key].filter((item) => item && present(item.value))
      : [];
    if (!values.length) continue;

    const group = el("div", "facet-group");
    group.dataset.facet = key;
    const list = el("ul", "facet-list");
    for (const item of values) list.append(buildFacetItem(key, item));
    const title = FACET_TITLES[key] || libraryFilterLabel(key) || capitalise(key);
    group.append(el("h3", "facet-title", title), list);
    groups.push(group);
  }
  if (!groups.length) groups.push(el("p", "muted small", "No refinements for these results."));
  els.facets.replaceChildren(...groups);
  refreshFacetPressed();
}

function buildFacetItem(key, item) {
  const li = el("li");
  const button = el("button", "facet");
  button.type = "button";
  button.dataset.facet = key;
  button.dataset.value = String(item.value);
  if (key === "colors") {
    const dot = el("span", "dot");
    dot.dataset.swatch = String(item.value);
    dot.setAttribute("aria-hidden", "true");
    button.append(dot);
  }
  const label = facetLabel(key, item.value);
  const count = formatCount(item.count);
  button.append(el("span", "facet-label", label), el("span", "facet-count", count));
  button.setAttribute("aria-label", count ? `${label}, ${count} ${plural(Number(item.count), "result", "results")}` : label);
  li.append(button);
  return li;
}

function isFacetActive(key, value) {
  switch (key) {
    case "subjects": return els.q.value.trim().toLowerCase() === String(value).toLowerCase();
    case "colors": return selectedColors().includes(value);
    case "format": return els.format.value === value;
    case "orientation": return els.orientation.value === value;
    case "decade": {
      const start = Number(value);
      return readInteger(numberInputs.year_from) === start &&
        readInteger(numberInputs.year_to) === start + 9;
    }
    default: return isLibraryFacet(key) && libraryFacetActive(key, value);
  }
}

export function refreshFacetPressed() {
  for (const button of els.facets.querySelectorAll(".facet")) {
    button.setAttribute("aria-pressed", String(isFacetActive(button.dataset.facet, button.dataset.value)));
  }
}

/** Clicking a facet applies it as a filter; clicking it again removes it. */
function applyFacet(key, value) {
  const active = isFacetActive(key, value);
  switch (key) {
    case "colors":
      setColorPressed(value, !active);
      break;
    case "format":
    case "orientation":
      if (active) els[key].value = "";
      else if (!setSelectValue(els[key], value)) return;
      break;
    case "subjects":
      // A subject is a word the model sees in the pictures: search by it.
      els.q.value = active ? "" : String(value);
      search({ force: true });
      return;
    case "decade": {
      const start = Number(value);
      if (!Number.isInteger(start)) return;
      numberInputs.year_from.value = active ? "" : String(start);
      numberInputs.year_to.value = active ? "" : String(start + 9);
      break;
    }
    default:
      if (!toggleLibraryFacet(key, value)) return;
  }
  onFiltersChanged();
}

export function onFacetClick(event) {
  const button = event.target.closest(".facet");
  if (button) applyFacet(button.dataset.facet, button.dataset.value);
}
