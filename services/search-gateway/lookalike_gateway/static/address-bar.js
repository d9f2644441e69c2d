/* The search mirrored in the address bar, so it can be bookmarked, shared or reloaded. */

import { LOCATION_KEYS } from "./config.js";
import { els, numberInputs, setSelectValue } from "./dom.js";
import { setColorPressed, updateFilterCount } from "./filters.js";
import { parsePalette, setPalette } from "./palette.js";
import { renderQueryPreview, useCatalogueImage } from "./query-image.js";
import { collectParams, hasQuery, search } from "./search.js";
import { present } from "./text.js";

export function syncLocation(params) {
  const query = new URLSearchParams();
  for (const key of LOCATION_KEYS) {
    if (present(params[key])) query.set(key, params[key]);
  }
  const text = query.toString();
  try {
    window.history.replaceState(null, "", text ? `?${text}` : window.location.pathname);
  } catch {
    // Sandboxed frames may refuse; the search itself is unaffected.
  }
}

export function restoreFromLocation() {
  const query = new URLSearchParams(window.location.search);
  if (query.has("q")) els.q.value = query.get("q");

  const imageId = query.get("image_id");
  const imageUrl = query.get("image_url");
  if (present(imageId)) useCatalogueImage(imageId, null, `Catalogue image ${imageId}`);
  else if (present(imageUrl)) els.imageUrl.value = imageUrl;

  for (const name of (query.get("colors") || "").split(",")) setColorPressed(name.trim(), true);
  if (query.has("palette")) setPalette(parsePalette(query.get("palette")));
  if (query.has("format")) setSelectValue(els.format, query.get("format"));
  if (query.has("orientation")) setSelectValue(els.orientation, query.get("orientation"));
  for (const [name, input] of Object.entries(numberInputs)) {
    const value = query.get(name);
    if (value !== null && /^-?\d+$/.test(value)) input.value = value;
  }

  renderQueryPreview();
  updateFilterCount();
  if (hasQuery(collectParams())) search({ force: true });
}
