/*
 * The filters: colour swatches, format, orientation, sizes and years; how many are on,
 * and the drawer they sit in on a phone. A change searches again, debounced for typing.
 */

import { NUMBER_DEBOUNCE_MS } from "./config.js";
import { els, numberInputs } from "./dom.js";
import { refreshFacetPressed } from "./facets.js";
import { activeLibraryFilters, clearLibraryFilters } from "./library-filters.js";
import { search } from "./search.js";
import { state } from "./state.js";

export function selectedColors() {
  return els.colorButtons
    .filter((button) => button.getAttribute("aria-pressed") === "true")
    .map((button) => button.dataset.color);
}

export function setColorPressed(name, pressed) {
  const button = els.colorButtons.find((b) => b.dataset.color === name);
  if (button) button.setAttribute("aria-pressed", String(pressed));
  return Boolean(button);
}

/** Integer value of a number input, or null when empty or invalid. */
export function readInteger(input) {
  const raw = input.value.trim();
  // validity catches out-of-range values such as a negative width, which
  // the server would reject with 400.
  if (raw === "" || !input.validity.valid) return null;
  const n = Number(raw);
  return Number.isInteger(n) ? n : null;
}

function activeFilterCount() {
  let count = selectedColors().length;
  if (els.format.value) count += 1;
  if (els.orientation.value) count += 1;
  for (const input of Object.values(numberInputs)) {
    if (readInteger(input) !== null) count += 1;
  }
  return count + activeLibraryFilters();
}

export function updateFilterCount() {
  const count = activeFilterCount();
  els.filterCount.textContent = count ? `(${count})` : "";
  els.filtersToggle.setAttribute(
    "aria-label",
    count ? `Filters, ${count} active` : "Filters",
  );
}

export function resetFilters() {
  for (const button of els.colorButtons) button.setAttribute("aria-pressed", "false");
  els.format.value = "";
  els.orientation.value = "";
  for (const input of Object.values(numberInputs)) input.value = "";
  clearLibraryFilters();
  onFiltersChanged();
}

export function onFiltersChanged() {
  clearTimeout(state.numberTimer);
  updateFilterCount();
  refreshFacetPressed();
  search();
}

export function setFiltersOpen(open) {
  els.filtersToggle.setAttribute("aria-expanded", String(open));
  els.filtersPanel.classList.toggle("is-open", open);
}

export function toggleFilters() {
  setFiltersOpen(els.filtersToggle.getAttribute("aria-expanded") !== "true");
}

export function filtersAreCollapsible() {
  return window.getComputedStyle(els.filtersToggle).display !== "none";
}

export function onFiltersSubmit(event) {
  event.preventDefault();
  search({ force: true });
  // On phones the "Show results" button closes the drawer to reveal cards.
  if (filtersAreCollapsible()) {
    setFiltersOpen(false);
    els.resultsHeading.focus();
  }
}

export function onFiltersKeydown(event) {
  // Four number fields and no default button means the browser would not
  // submit on Enter by itself.
  if (event.key === "Enter" && event.target instanceof HTMLInputElement) {
    event.preventDefault();
    clearTimeout(state.numberTimer);
    updateFilterCount();
    search({ force: true });
  }
}

export function onNumberInput() {
  clearTimeout(state.numberTimer);
  updateFilterCount();
  state.numberTimer = window.setTimeout(onFiltersChanged, NUMBER_DEBOUNCE_MS);
}

export function onColorClick(event) {
  const button = event.currentTarget;
  const pressed = button.getAttribute("aria-pressed") === "true";
  button.setAttribute("aria-pressed", String(!pressed));
  onFiltersChanged();
}
