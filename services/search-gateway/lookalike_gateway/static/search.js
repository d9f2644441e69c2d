/*
 * Building a search from the form and running it: one request at a time (a newer one
 * aborts the older), its NDJSON lines handed to the renderer as they arrive, and its
 * failures told in plain words.
 */

import { syncLocation } from "./address-bar.js";
import { SEARCH_ENDPOINT, SERVER } from "./config.js";
import { els, numberInputs } from "./dom.js";
import { readInteger, selectedColors } from "./filters.js";
import { libraryFilterParams } from "./library-filters.js";
import { clearError, hideNotice, showError } from "./messages.js";
import { readNdjson } from "./ndjson.js";
import { paletteParam } from "./palette.js";
import {
  clearResults, renderDone, renderHit, setResultsState, setStatus, updateMoreButton,
} from "./results.js";
import { state } from "./state.js";
import { present, textOr } from "./text.js";
import { parseImageUrl } from "./urls.js";

class SearchError extends Error {}

/** Current form state as API fields; empty fields are left out. */
export function collectParams() {
  const params = {};
  const image = state.image;
  if (image && image.kind === "file") params.image = image.file;
  else if (image && image.kind === "id") params.image_id = image.id;
  else {
    const url = els.imageUrl.value.trim();
    if (url) params.image_url = url;
  }

  const q = els.q.value.trim();
  if (q) params.q = q;

  const colors = selectedColors();
  if (colors.length) params.colors = colors.join(",");
  if (state.palette.length) params.palette = paletteParam(state.palette);
  if (els.format.value) params.format = els.format.value;
  if (els.orientation.value) params.orientation = els.orientation.value;

  for (const [name, input] of Object.entries(numberInputs)) {
    const value = readInteger(input);
    if (value !== null) params[name] = String(value);
  }

  Object.assign(params, libraryFilterParams());
  params.limit = String(SERVER.pageSize);
  return params;
}

export function hasQuery(params) {
  return Boolean(params.image || params.image_id || params.image_url || params.q || params.palette);
}

/** Identity of a request, used to skip re-running an identical search. */
function signatureOf(params) {
  return JSON.stringify(params, (key, value) =>
    value instanceof Blob ? `file#${state.image ? state.image.key : 0}` : value,
  );
}

function toFormData(params) {
  const form = new FormData();
  for (const [name, value] of Object.entries(params)) {
    if (!present(value) && !(value instanceof Blob)) continue;
    if (value instanceof Blob) form.append(name, value, value.name || "image");
    else form.append(name, String(value));
  }
  return form;
}

/**
 * Run the current search. Filter changes call this without `force`, so a
 * change that leaves the request identical (e.g. blur after a debounced
 * number edit) does not fire a second request.
 */
export function search({ force = false } = {}) {
  const params = collectParams();
  if (!hasQuery(params)) {
    if (force) {
      clearError();
      setStatus("Add an image or some keywords to search.");
    }
    return;
  }
  if (params.image_url && !parseImageUrl(params.image_url)) {
    showError("The image URL must be a full address starting with http:// or https://.");
    setStatus("Check the image URL.");
    return;
  }
  const signature = signatureOf(params);
  if (!force && signature === state.lastSignature) return;

  state.lastSignature = signature;
  state.lastParams = params;
  syncLocation(params);
  runRequest(params, { append: false });
}

export function loadMore() {
  if (!state.lastParams || !state.nextCursor) return;
  runRequest({ ...state.lastParams, cursor: state.nextCursor }, { append: true });
}

async function runRequest(params, { append }) {
  // Only the newest request may touch the page.
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const isCurrent = () => state.controller === controller;

  clearTimeout(state.numberTimer);
  clearError();
  hideNotice();
  els.empty.hidden = true;
  if (append) {
    els.more.disabled = true;
    els.more.textContent = "Loading more…";
  } else {
    clearResults();
    state.nextCursor = null;
    els.more.hidden = true;
  }
  state.batch = [];
  setResultsState("loading");
  setStatus("Searching…");

  let phase = "connect";
  let finished = false;
  try {
    const response = await fetch(SEARCH_ENDPOINT, {
      method: "POST",
      body: toFormData(params),
      headers: { Accept: "application/x-ndjson" },
      signal: controller.signal,
    });
    if (!response.ok) throw new SearchError(await readErrorMessage(response));

    phase = "stream";
    await readNdjson(response, (message) => {
      if (!isCurrent()) return;
      if (handleMessage(message, append)) finished = true;
    });
    if (!isCurrent()) return;
    if (!finished) {
      throw new SearchError("The search stopped before it finished, so some results may be missing. Please try again.");
    }
  } catch (error) {
    if (controller.signal.aborted || !isCurrent()) return;
    showError(describeFailure(error, phase));
    setResultsState("error");
    setStatus("Search failed.");
  } finally {
    if (isCurrent()) {
      state.controller = null;
      els.results.setAttribute("aria-busy", "false");
      updateMoreButton();
    }
  }
}

/** Returns true when the message ends the answer. */
function handleMessage(message, append) {
  switch (message.type) {
    case "hit":
      renderHit(message);
      return false;
    case "done":
      renderDone(message, append);
      return true;
    case "error": {
      // Not in the documented protocol, but a server may fail mid-stream.
      const detail = message.error && message.error.message;
      throw new SearchError(textOr(detail || message.message, "The search failed part way through."));
    }
    default:
      return false;
  }
}

export async function readErrorMessage(response) {
  let body = "";
  try {
    body = await response.text();
  } catch {
    // Fall through to the status-based message.
  }
  try {
    const data = JSON.parse(body);
    const message = data && data.error && data.error.message;
    if (present(message)) return String(message);
  } catch {
    // Not JSON (e.g. a proxy error page).
  }
  if (response.status === 413) return "The image is too large to upload. Try a smaller file.";
  if (response.status === 429) return "Too many searches at once. Please wait a moment and try again.";
  if (response.status >= 500) return `The search service had a problem (HTTP ${response.status}). Please try again in a moment.`;
  return `The search service refused the request (HTTP ${response.status}).`;
}

function describeFailure(error, phase) {
  if (error instanceof SearchError) return error.message;
  // Keep the real cause findable for developers; people get plain words.
  console.error("lookalike: search failed", error);
  if (phase === "connect") {
    return "Could not reach the search service. Check your connection and try again.";
  }
  return "The connection was interrupted while results were arriving, so some may be missing. Please try again.";
}
