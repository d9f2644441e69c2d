/* Keys anywhere on the page: "/" goes to the keywords, Escape clears the image or drawer. */

import { els, isEditable } from "./dom.js";
import { filtersAreCollapsible, setFiltersOpen } from "./filters.js";
import { clearQueryImage, hasQueryImage } from "./query-image.js";

export function onGlobalKeydown(event) {
  if (event.defaultPrevented || event.isComposing) return;
  const plain = !event.ctrlKey && !event.metaKey && !event.altKey;

  if (event.key === "/" && plain && !isEditable(event.target)) {
    event.preventDefault();
    els.q.focus();
    els.q.select();
    return;
  }
  if (event.key === "Escape") {
    if (hasQueryImage()) {
      // Also stops a search field from clearing its keywords on the same key.
      event.preventDefault();
      clearQueryImage();
      return;
    }
    if (els.filtersPanel.classList.contains("is-open") && filtersAreCollapsible()) {
      setFiltersOpen(false);
      els.filtersToggle.focus();
    }
  }
}
