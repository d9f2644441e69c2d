/*
 * lookalike search page: the entry module, which wires the page's events to the modules
 * that handle them, then runs the search the address bar holds.
 *
 * Plain ES modules, no dependencies, no build step. The page posts the query to
 * POST /v1/search and renders the NDJSON answer line by line as it streams.
 * Handlers are bound as this module runs, before the document's `load`, so nothing a
 * person does once the page shows is lost.
 */

import { restoreFromLocation } from "./address-bar.js";
import { onResultsClick, onResultsKeydown } from "./card-actions.js";
import { wireCompare } from "./compare-view.js";
import { buildLibraryFilters } from "./library-filters.js";
import { els, numberInputs } from "./dom.js";
import {
  onDocumentDragOver, onDocumentDrop, onDragEnter, onDragLeave, onDragOver, onDrop, onPaste,
} from "./drop-and-paste.js";
import { onFacetClick } from "./facets.js";
import {
  onColorClick, onFiltersChanged, onFiltersKeydown, onFiltersSubmit, onNumberInput,
  resetFilters, toggleFilters,
} from "./filters.js";
import { onPaletteAdd, onPaletteChosenClick, onPaletteClear } from "./palette.js";
import {
  clearQueryImage, onFileChosen, onImageUrlInput, onImageUrlPaste, onQueryImageError,
  renderQueryPreview,
} from "./query-image.js";
import { loadMore, search } from "./search.js";
import { onGlobalKeydown } from "./shortcuts.js";

function onSearchSubmit(event) {
  event.preventDefault();
  search({ force: true });
}

function bindEvents() {
  els.searchForm.addEventListener("submit", onSearchSubmit);
  els.pickFile.addEventListener("click", () => els.fileInput.click());
  els.fileInput.addEventListener("change", onFileChosen);
  els.clearImage.addEventListener("click", clearQueryImage);
  els.imageUrl.addEventListener("input", onImageUrlInput);
  els.imageUrl.addEventListener("change", renderQueryPreview);
  els.imageUrl.addEventListener("paste", onImageUrlPaste);
  els.queryImage.addEventListener("error", onQueryImageError);
  els.queryImage.addEventListener("load", () => els.queryPreview.classList.remove("is-broken"));

  els.dropzone.addEventListener("dragenter", onDragEnter);
  els.dropzone.addEventListener("dragover", onDragOver);
  els.dropzone.addEventListener("dragleave", onDragLeave);
  els.dropzone.addEventListener("drop", onDrop);
  document.addEventListener("dragover", onDocumentDragOver);
  document.addEventListener("drop", onDocumentDrop);
  document.addEventListener("paste", onPaste);
  document.addEventListener("keydown", onGlobalKeydown);

  for (const button of els.colorButtons) button.addEventListener("click", onColorClick);
  els.paletteAdd.addEventListener("click", onPaletteAdd);
  els.paletteChosen.addEventListener("click", onPaletteChosenClick);
  els.paletteClear.addEventListener("click", onPaletteClear);
  els.format.addEventListener("change", onFiltersChanged);
  els.orientation.addEventListener("change", onFiltersChanged);
  for (const input of Object.values(numberInputs)) {
    input.addEventListener("input", onNumberInput);
    input.addEventListener("change", onFiltersChanged);
  }
  els.filtersForm.addEventListener("submit", onFiltersSubmit);
  els.filtersForm.addEventListener("keydown", onFiltersKeydown);
  els.resetFilters.addEventListener("click", resetFilters);
  els.filtersToggle.addEventListener("click", toggleFilters);
  els.facets.addEventListener("click", onFacetClick);

  els.results.addEventListener("click", onResultsClick);
  els.results.addEventListener("keydown", onResultsKeydown);
  els.more.addEventListener("click", loadMore);
  wireCompare();
  buildLibraryFilters(onFiltersChanged);
}

bindEvents();
restoreFromLocation();
