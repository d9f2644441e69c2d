/*
 * lookalike search page.
 *
 * Plain ES2020, no dependencies, no build step. The page posts the query to
 * POST /v1/search and renders the NDJSON answer line by line as it streams.
 * All data goes into the DOM through textContent / attributes, never innerHTML.
 */
(() => {
  "use strict";

  // ---------------------------------------------------------------------------
  // Constants
  // ---------------------------------------------------------------------------

  const SEARCH_ENDPOINT = "/v1/search";
  const PAGE_SIZE = 24;
  const NUMBER_DEBOUNCE_MS = 450;
  const URL_PREVIEW_DEBOUNCE_MS = 400;

  // Must match --thumb-aspect in style.css. Thumbnails are letterboxed by
  // object-fit: contain, so the region outline is placed using this ratio.
  const THUMB_ASPECT = 1;

  const MATCH_LABELS = Object.freeze({
    duplicate: "Same artwork",
    similar: "Looks like",
    text: "Keyword",
  });

  // Every score is 0-100; what it measures differs by kind, and the badge's title says so.
  const SCORE_MEANINGS = Object.freeze({
    duplicate: "how sure the matcher is that this is the same artwork",
    similar: "how alike the two pictures look",
    text: "relevance to your words, against the best match",
    colour: "how much of the chosen colours this image holds",
  });
  const MAX_PALETTE = 5;

  // Browsers sometimes leave File.type empty (TIFF on some systems), so the
  // extension is a second chance to recognise an image.
  const IMAGE_NAME = /\.(jpe?g|jfif|png|gif|tiff?|webp|bmp|avif|heic|heif)$/i;
  const HEX_COLOUR = /^#(?:[0-9a-f]{3}|[0-9a-f]{4}|[0-9a-f]{6}|[0-9a-f]{8})$/i;

  // API field name -> input id.
  const NUMBER_FIELDS = Object.freeze({
    min_width: "min-width",
    min_height: "min-height",
    year_from: "year-from",
    year_to: "year-to",
  });

  const FACET_GROUPS = Object.freeze([
    { key: "colors", title: "Colour" },
    { key: "format", title: "Format" },
    { key: "orientation", title: "Orientation" },
    { key: "decade", title: "Decade" },
    { key: "subjects", title: "Subject" },
  ]);

  // Fields mirrored in the address bar so a search can be bookmarked or shared
  // (an uploaded file cannot be, so "image" is deliberately absent).
  const LOCATION_KEYS = Object.freeze([
    "q", "image_id", "image_url", "colors", "palette", "format", "orientation",
    "min_width", "min_height", "year_from", "year_to",
  ]);

  // ---------------------------------------------------------------------------
  // Elements and state
  // ---------------------------------------------------------------------------

  const byId = (id) => document.getElementById(id);

  const els = {
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

  const numberInputs = Object.fromEntries(
    Object.entries(NUMBER_FIELDS).map(([name, id]) => [name, byId(id)]),
  );

  const state = {
    // The chosen query image, or null. The URL field is read live instead,
    // so typing there needs no bookkeeping.
    //   { kind: "file", file, key, previewUrl, objectUrl, label }
    //   { kind: "id", id, key, previewUrl, label }
    image: null,
    imageKey: 0,
    controller: null,
    lastParams: null,
    lastSignature: "",
    nextCursor: null,
    cardsById: new Map(),
    batch: [], // cards of the page currently streaming, kept in rank order
    cardSerial: 0,
    numberTimer: 0,
    urlPreviewTimer: 0,
    dragDepth: 0,
    // Colour search: [{ hex: "#rrggbb", weight: 1-100 }], at most MAX_PALETTE.
    palette: [],
  };

  class SearchError extends Error {}

  // ---------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function present(value) {
    return value !== undefined && value !== null && String(value).trim() !== "";
  }

  function textOr(value, fallback) {
    return present(value) ? String(value).trim() : fallback;
  }

  function capitalise(word) {
    const text = String(word);
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function clamp01(value) {
    const n = Number(value);
    return Number.isFinite(n) ? Math.min(1, Math.max(0, n)) : 0;
  }

  function plural(n, one, many) {
    return n === 1 ? one : many;
  }

  function formatCount(value) {
    const n = Number(value);
    return Number.isFinite(n) ? n.toLocaleString() : "";
  }

  function thumbnailUrlFor(imageId) {
    return `/v1/images/${encodeURIComponent(imageId)}/thumbnail`;
  }

  /** An absolute http(s) URL typed or pasted by the person, or null. */
  function parseImageUrl(value) {
    try {
      const url = new URL(String(value).trim());
      return url.protocol === "http:" || url.protocol === "https:" ? url : null;
    } catch {
      return null;
    }
  }

  /** Link target from catalogue data; refuses javascript: and friends. */
  function safeHref(value) {
    if (!present(value)) return null;
    try {
      const url = new URL(String(value), window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch {
      return null;
    }
  }

  function isImageFile(file) {
    if (!file) return false;
    if (file.type) return file.type.startsWith("image/");
    return IMAGE_NAME.test(file.name || "");
  }

  function isEditable(target) {
    if (!(target instanceof HTMLElement)) return false;
    if (target.isContentEditable) return true;
    return ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
  }

  function prefersReducedMotion() {
    return window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  }

  function setSelectValue(select, value) {
    const wanted = String(value);
    const exists = Array.from(select.options).some((option) => option.value === wanted);
    if (exists) select.value = wanted;
    return exists;
  }

  // ---------------------------------------------------------------------------
  // Query image (file, pasted, dropped, catalogue id or URL)
  // ---------------------------------------------------------------------------

  function releaseImage() {
    if (state.image && state.image.objectUrl) URL.revokeObjectURL(state.image.objectUrl);
    state.image = null;
  }

  function hasQueryImage() {
    return Boolean(state.image) || els.imageUrl.value.trim() !== "";
  }

  function useImageFile(file) {
    if (!isImageFile(file)) {
      showError("That file is not an image. Choose a JPEG, PNG, GIF, TIFF or WebP file.");
      return;
    }
    releaseImage();
    const objectUrl = URL.createObjectURL(file);
    state.image = {
      kind: "file",
      file,
      key: ++state.imageKey,
      previewUrl: objectUrl,
      objectUrl,
      label: textOr(file.name, "Pasted image"),
    };
    // One query image at a time: a file replaces a typed URL.
    els.imageUrl.value = "";
    renderQueryPreview();
    search({ force: true });
  }

  function useImageUrl(url) {
    releaseImage();
    els.imageUrl.value = url;
    renderQueryPreview();
    search({ force: true });
  }

  function useCatalogueImage(imageId, previewUrl, label) {
    releaseImage();
    state.image = {
      kind: "id",
      id: imageId,
      key: ++state.imageKey,
      previewUrl: previewUrl || thumbnailUrlFor(imageId),
      label,
    };
    els.imageUrl.value = "";
    renderQueryPreview();
  }

  function clearQueryImage() {
    const hadFocus = els.queryPreview.contains(document.activeElement);
    releaseImage();
    els.imageUrl.value = "";
    els.fileInput.value = "";
    clearTimeout(state.urlPreviewTimer);
    renderQueryPreview();
    // The clear button disappears with the preview; keep focus somewhere useful.
    if (hadFocus) els.pickFile.focus();
  }

  function renderQueryPreview() {
    let src = null;
    let label = "";
    if (state.image) {
      src = state.image.previewUrl;
      label = state.image.label;
    } else {
      const url = parseImageUrl(els.imageUrl.value);
      if (url) {
        src = url.href;
        label = url.hostname ? `Image from ${url.hostname}` : "Image from URL";
      }
    }
    els.queryPreview.hidden = !src;
    els.dropzone.classList.toggle("has-image", Boolean(src));
    if (!src) {
      els.queryImage.removeAttribute("src");
      els.queryLabel.textContent = "";
      return;
    }
    els.queryPreview.classList.remove("is-broken");
    if (els.queryImage.getAttribute("src") !== src) els.queryImage.src = src;
    els.queryImage.alt = `Query image: ${label}`;
    els.queryLabel.textContent = label;
  }

  /** First image file in a DataTransfer (drop or clipboard), or null. */
  function imageFileFrom(data) {
    for (const file of Array.from(data.files || [])) {
      if (isImageFile(file)) return file;
    }
    // Some browsers expose pasted screenshots only through items.
    for (const item of Array.from(data.items || [])) {
      if (item.kind === "file" && item.type.startsWith("image/")) {
        const file = item.getAsFile();
        if (file) return file;
      }
    }
    return null;
  }

  /** Image URL carried by a drag from another page (an <img> or a link). */
  function imageUrlFrom(data) {
    const html = data.getData("text/html");
    if (html) {
      // DOMParser builds an inert document: no scripts run, no images load.
      const doc = new DOMParser().parseFromString(html, "text/html");
      const img = doc.querySelector("img[src]");
      const url = img && parseImageUrl(img.getAttribute("src"));
      if (url) return url.href;
    }
    const uriList = data.getData("text/uri-list");
    const firstUri = uriList.split(/\r?\n/).find((line) => line && !line.startsWith("#"));
    const candidate = parseImageUrl(firstUri || data.getData("text/plain") || "");
    return candidate ? candidate.href : null;
  }

  // ---------------------------------------------------------------------------
  // Filters
  // ---------------------------------------------------------------------------

  function selectedColors() {
    return els.colorButtons
      .filter((button) => button.getAttribute("aria-pressed") === "true")
      .map((button) => button.dataset.color);
  }

  function setColorPressed(name, pressed) {
    const button = els.colorButtons.find((b) => b.dataset.color === name);
    if (button) button.setAttribute("aria-pressed", String(pressed));
    return Boolean(button);
  }

  /** Integer value of a number input, or null when empty or invalid. */
  function readInteger(input) {
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
    return count;
  }

  function updateFilterCount() {
    const count = activeFilterCount();
    els.filterCount.textContent = count ? `(${count})` : "";
    els.filtersToggle.setAttribute(
      "aria-label",
      count ? `Filters, ${count} active` : "Filters",
    );
  }

  function resetFilters() {
    for (const button of els.colorButtons) button.setAttribute("aria-pressed", "false");
    els.format.value = "";
    els.orientation.value = "";
    for (const input of Object.values(numberInputs)) input.value = "";
    onFiltersChanged();
  }

  function onFiltersChanged() {
    clearTimeout(state.numberTimer);
    updateFilterCount();
    refreshFacetPressed();
    search();
  }

  function setFiltersOpen(open) {
    els.filtersToggle.setAttribute("aria-expanded", String(open));
    els.filtersPanel.classList.toggle("is-open", open);
  }

  function filtersAreCollapsible() {
    return window.getComputedStyle(els.filtersToggle).display !== "none";
  }

  // ---------------------------------------------------------------------------
  // Building and running a search
  // ---------------------------------------------------------------------------

  /** Current form state as API fields; empty fields are left out. */
  function collectParams() {
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

    params.limit = String(PAGE_SIZE);
    return params;
  }

  function hasQuery(params) {
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
  function search({ force = false } = {}) {
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

  function loadMore() {
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

  /** Reads the body as NDJSON, calling onMessage per line as it arrives. */
  async function readNdjson(response, onMessage) {
    if (!response.body) {
      // Very old engines have no streaming body; still show the results.
      const text = await response.text();
      text.split("\n").forEach((line) => emitLine(line, onMessage));
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        // A chunk can end in the middle of a line: keep the tail for later.
        let newline = buffer.indexOf("\n");
        while (newline !== -1) {
          emitLine(buffer.slice(0, newline), onMessage);
          buffer = buffer.slice(newline + 1);
          newline = buffer.indexOf("\n");
        }
      }
      buffer += decoder.decode();
      emitLine(buffer, onMessage);
    } catch (error) {
      // Stop downloading a stream whose results will not be shown.
      reader.cancel().catch(() => {});
      throw error;
    }
  }

  function emitLine(line, onMessage) {
    const text = line.trim();
    if (!text) return;
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      // One damaged line should not throw away the rest of the results.
      console.warn("lookalike: skipped a line that is not JSON:", text.slice(0, 200));
      return;
    }
    if (message && typeof message === "object") onMessage(message);
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

  async function readErrorMessage(response) {
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

  // ---------------------------------------------------------------------------
  // Rendering results
  // ---------------------------------------------------------------------------

  function setResultsState(value) {
    els.results.dataset.state = value;
    els.results.setAttribute("aria-busy", String(value === "loading"));
  }

  function setStatus(text) {
    els.status.textContent = text;
  }

  function clearResults() {
    els.results.replaceChildren();
    state.cardsById.clear();
    state.batch = [];
  }

  function renderHit(hit) {
    const card = buildCard(hit);
    const imageId = card.dataset.imageId;
    const existing = imageId ? state.cardsById.get(imageId) : null;
    if (existing) {
      // Same image already shown by an earlier page: keep the first one.
      if (!state.batch.includes(existing)) return;
      // Same image again in this page: the server refined it (e.g. a "Looks
      // like" hit confirmed as the same artwork), so the newer hit wins.
      state.batch = state.batch.filter((c) => c !== existing);
      existing.remove();
    }
    insertByRank(card);
    if (imageId) state.cardsById.set(imageId, card);
  }

  /** Hits may stream out of rank order; keep each page sorted by rank. */
  function insertByRank(card) {
    const rank = rankOf(card);
    const before = state.batch.find((other) => rankOf(other) > rank);
    if (before) els.results.insertBefore(card, before);
    else els.results.append(card);
    state.batch.push(card);
  }

  function rankOf(card) {
    const n = Number(card.dataset.rank);
    return card.dataset.rank !== "" && Number.isFinite(n) ? n : Number.POSITIVE_INFINITY;
  }

  function buildCard(hit) {
    const doc = hit.doc && typeof hit.doc === "object" ? hit.doc : {};
    const imageId = textOr(hit.image_id, textOr(doc.image_id, ""));
    const match = typeof hit.match === "string" ? hit.match : "";
    const title = textOr(doc.title, "Untitled");
    const titleId = `card-title-${++state.cardSerial}`;

    const card = el("article", "card");
    card.tabIndex = 0;
    card.dataset.imageId = imageId;
    card.dataset.match = match;
    card.dataset.rank = typeof hit.rank === "number" ? String(hit.rank) : "";
    card.setAttribute("aria-labelledby", titleId);

    card.append(buildThumb(hit, doc, imageId, title), buildCardBody(hit, doc, title, titleId));
    return card;
  }

  function buildThumb(hit, doc, imageId, title) {
    const frame = el("div", "thumb");
    const img = document.createElement("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = present(doc.creator) ? `${title} by ${String(doc.creator).trim()}` : title;

    const fallback = thumbnailUrlFor(imageId);
    const primary = present(doc.thumbnail_url) ? String(doc.thumbnail_url) : fallback;
    img.addEventListener("error", () => onThumbError(img, frame, fallback));
    frame.append(img);

    if (hit.match === "duplicate" && isRegion(hit.region)) {
      const box = el("div", "region");
      box.setAttribute("aria-hidden", "true");
      box.hidden = true;
      frame.append(box);
      // Catalogue dimensions place the outline before the thumbnail loads;
      // the thumbnail's own size corrects it once known.
      positionRegion(box, hit.region, Number(doc.width), Number(doc.height));
      img.addEventListener("load", () =>
        positionRegion(box, hit.region, img.naturalWidth, img.naturalHeight),
      );
    }

    img.src = primary;
    return frame;
  }

  function onThumbError(img, frame, fallback) {
    const fallbackHref = new URL(fallback, window.location.href).href;
    if (img.dataset.retried !== "true" && img.src !== fallbackHref) {
      img.dataset.retried = "true";
      img.src = fallback;
      return;
    }
    img.hidden = true;
    frame.classList.add("thumb--missing");
    if (!frame.querySelector(".thumb-missing")) frame.append(el("span", "thumb-missing", "No preview"));
    const region = frame.querySelector(".region");
    if (region) region.hidden = true;
  }

  function isRegion(region) {
    return Boolean(region) && typeof region === "object" &&
      ["x", "y", "w", "h"].every((k) => Number.isFinite(Number(region[k]))) &&
      Number(region.w) > 0 && Number(region.h) > 0;
  }

  /**
   * The area the image actually covers inside the fixed-ratio box, in percent
   * of the box, because object-fit: contain adds bars on two sides.
   */
  function containedArea(imageAspect) {
    if (!(imageAspect > 0) || !Number.isFinite(imageAspect)) {
      return { left: 0, top: 0, width: 100, height: 100 };
    }
    if (imageAspect >= THUMB_ASPECT) {
      const height = (THUMB_ASPECT / imageAspect) * 100;
      return { left: 0, top: (100 - height) / 2, width: 100, height };
    }
    const width = (imageAspect / THUMB_ASPECT) * 100;
    return { left: (100 - width) / 2, top: 0, width, height: 100 };
  }

  function positionRegion(box, region, imageWidth, imageHeight) {
    if (!(imageWidth > 0 && imageHeight > 0)) return;
    const area = containedArea(imageWidth / imageHeight);
    const x = clamp01(region.x);
    const y = clamp01(region.y);
    const w = Math.min(clamp01(region.w), 1 - x);
    const h = Math.min(clamp01(region.h), 1 - y);
    box.style.left = `${area.left + x * area.width}%`;
    box.style.top = `${area.top + y * area.height}%`;
    box.style.width = `${w * area.width}%`;
    box.style.height = `${h * area.height}%`;
    box.hidden = false;
  }

  function buildCardBody(hit, doc, title, titleId) {
    const body = el("div", "card-body");
    body.append(buildBadge(hit));

    const heading = el("h3", "card-title");
    heading.id = titleId;
    const href = safeHref(doc.image_url);
    if (href) {
      const link = el("a", null, title);
      link.href = href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      heading.append(link);
    } else {
      heading.textContent = title;
    }
    body.append(heading);

    if (present(doc.creator)) body.append(el("p", "card-creator", String(doc.creator).trim()));

    const meta = [doc.year, doc.medium].filter(present).map(String).join(" · ");
    if (meta) body.append(el("p", "card-meta", meta));

    const details = cardDetails(doc);
    if (details) body.append(el("p", "card-details", details));

    const overlap = overlapText(hit);
    if (overlap) body.append(el("p", "card-details", overlap));

    const palette = buildPalette(doc.palette);
    if (palette) body.append(palette);

    const actions = el("div", "card-actions");
    const more = el("button", "button button--small more-like", "More like this");
    more.type = "button";
    more.setAttribute("aria-label", `More like “${title}”`);
    actions.append(more);
    body.append(actions);
    return body;
  }

  /** "Same artwork · 97%": one 0-100 scale for every kind; no number when there is no
   *  ranking to read (filters alone score 0). */
  function buildBadge(hit) {
    const known = Object.prototype.hasOwnProperty.call(MATCH_LABELS, hit.match);
    const label = known ? MATCH_LABELS[hit.match] : "Match";
    const hasScore = typeof hit.score === "number" && Number.isFinite(hit.score) && hit.score > 0;
    const score = hasScore ? Math.round(Math.min(100, hit.score)) : null;
    const text = hasScore ? `${label} · ${score}%` : label;
    const badge = el("span", `badge badge--${known ? hit.match : "other"}`, text);
    const kind = hit.match === "text" && state.palette.length && !els.q.value.trim() ? "colour" : hit.match;
    if (hasScore && SCORE_MEANINGS[kind]) badge.title = `${score} of 100: ${SCORE_MEANINGS[kind]}`;
    return badge;
  }

  function cardDetails(doc) {
    const parts = [];
    if (present(doc.format)) parts.push(String(doc.format).toUpperCase());
    const width = Number(doc.width);
    const height = Number(doc.height);
    if (width > 0 && height > 0) parts.push(`${width.toLocaleString()} × ${height.toLocaleString()} px`);
    if (present(doc.license)) parts.push(String(doc.license));
    return parts.join(" · ");
  }

  function overlapText(hit) {
    if (hit.match !== "duplicate" || !hit.overlap || typeof hit.overlap !== "object") return "";
    const pct = (v) => `${Math.round(clamp01(v) * 100)}%`;
    const { query, target } = hit.overlap;
    if (!Number.isFinite(Number(query)) || !Number.isFinite(Number(target))) return "";
    return `Overlap: ${pct(query)} of your image, ${pct(target)} of this one`;
  }

  function buildPalette(palette) {
    if (!Array.isArray(palette)) return null;
    const entries = palette
      .filter((p) => p && typeof p.hex === "string" && HEX_COLOUR.test(p.hex))
      .slice(0, 8);
    if (!entries.length) return null;
    // A button: clicking a card's palette searches by its colours and their shares.
    const strip = el("button", "palette");
    strip.type = "button";
    strip.dataset.palette = paletteParam(entries.map((p) => ({ hex: p.hex, weight: shareOf(p.weight) })));
    strip.setAttribute("aria-label", `Search by these colours: ${entries.map((p) => p.hex).join(", ")}`);
    strip.title = "Search by these colours";
    for (const entry of entries) {
      const chip = el("span", "palette-chip");
      const weight = Number(entry.weight);
      chip.style.backgroundColor = entry.hex;
      // Shares in percent: their sum is over 1, so the strip fills the card's width.
      chip.style.flexGrow = String(weight > 0 ? weight * 100 : 1);
      chip.title = entry.hex;
      strip.append(chip);
    }
    return strip;
  }

  // ---------------------------------------------------------------------------
  // Colour search
  // ---------------------------------------------------------------------------

  function shareOf(weight) {
    const value = Number(weight);
    return Number.isFinite(value) ? Math.max(1, Math.min(100, Math.round(value * 100))) : 1;
  }

  function paletteParam(palette) {
    return palette.map((p) => `${p.hex.replace("#", "")}:${p.weight}`).join(",");
  }

  function parsePalette(text) {
    const out = [];
    for (const part of String(text || "").split(",")) {
      const [hex, weight] = part.trim().split(":");
      if (!/^#?[0-9a-f]{6}$/i.test(hex || "")) continue;
      const w = Number(weight);
      out.push({ hex: `#${hex.replace("#", "").toLowerCase()}`, weight: w > 0 && w <= 100 ? w : 20 });
    }
    return out.slice(0, MAX_PALETTE);
  }

  function setPalette(palette) {
    state.palette = palette.slice(0, MAX_PALETTE);
    renderPalette();
  }

  function renderPalette() {
    const chips = state.palette.map((entry, index) => {
      const chip = el("button", "palette-pick");
      chip.type = "button";
      chip.style.setProperty("--pick", entry.hex);
      chip.dataset.index = String(index);
      chip.setAttribute("aria-label", `Remove ${entry.hex} (${entry.weight}%)`);
      chip.append(el("span", "palette-pick-weight", `${entry.weight}%`));
      return chip;
    });
    els.paletteChosen.replaceChildren(...chips);
    els.paletteClear.hidden = !state.palette.length;
    els.paletteAdd.disabled = state.palette.length >= MAX_PALETTE;
  }

  /** The picker's colour joins the search; shares are spread evenly over the colours. */
  function onPaletteAdd() {
    const hex = String(els.palettePicker.value || "").toLowerCase();
    if (!/^#[0-9a-f]{6}$/.test(hex) || state.palette.length >= MAX_PALETTE) return;
    const colours = [...state.palette.map((p) => p.hex).filter((h) => h !== hex), hex];
    const share = Math.floor(100 / colours.length);
    setPalette(colours.map((h) => ({ hex: h, weight: share })));
    search({ force: true });
  }

  function onPaletteChosenClick(event) {
    const chip = event.target.closest(".palette-pick");
    if (!chip) return;
    setPalette(state.palette.filter((_, i) => String(i) !== chip.dataset.index));
    search({ force: true });
  }

  function onPaletteClear() {
    setPalette([]);
    search({ force: true });
  }

  function renderDone(message, append) {
    const shown = els.results.querySelectorAll(".card").length;
    const total = typeof message.total === "number" ? message.total : shown;
    // "total" may count the whole result set or only this page; after
    // "More results" the number of cards on screen is the lower bound.
    const count = Math.max(total, shown);
    const took = Number(message.took_ms);
    const countText = `${count.toLocaleString()} ${plural(count, "result", "results")}`;
    setStatus(Number.isFinite(took) ? `${countText} in ${Math.round(took)} ms` : countText);

    showWarnings(Array.isArray(message.warnings) ? message.warnings : []);
    if (message.facets && typeof message.facets === "object") renderFacets(message.facets);

    state.nextCursor = present(message.next_cursor) ? message.next_cursor : null;
    els.empty.hidden = shown > 0 || append;
    setResultsState("done");
  }

  function updateMoreButton() {
    els.more.disabled = false;
    els.more.textContent = "More results";
    els.more.hidden = !state.nextCursor;
  }

  // ---------------------------------------------------------------------------
  // Facets
  // ---------------------------------------------------------------------------

  function facetLabel(key, value) {
    switch (key) {
      case "format": return String(value).toUpperCase();
      case "decade": return `${value}s`;
      default: return capitalise(value);
    }
  }

  function renderFacets(facets) {
    const groups = [];
    for (const { key, title } of FACET_GROUPS) {
      const values = Array.isArray(facets[key])
        ? facets[key].filter((item) => item && present(item.value))
        : [];
      if (!values.length) continue;

      const group = el("div", "facet-group");
      const list = el("ul", "facet-list");
      for (const item of values) list.append(buildFacetItem(key, item));
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
      default: return false;
    }
  }

  function refreshFacetPressed() {
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
        return;
    }
    onFiltersChanged();
  }

  // ---------------------------------------------------------------------------
  // Messages
  // ---------------------------------------------------------------------------

  function showError(message) {
    const title = el("p", "error-title", "Search failed");
    const detail = el("p", "error-message", message);
    els.error.replaceChildren(title, detail);
  }

  function clearError() {
    els.error.replaceChildren();
  }

  function showWarnings(warnings) {
    const texts = warnings.filter(present).map(String);
    if (!texts.length) {
      hideNotice();
      return;
    }
    const list = el("ul", "notice-list");
    for (const text of texts) list.append(el("li", null, text));
    const dismiss = el("button", "icon-button notice-dismiss");
    dismiss.type = "button";
    dismiss.setAttribute("aria-label", "Dismiss notice");
    const cross = el("span", null, "×");
    cross.setAttribute("aria-hidden", "true");
    dismiss.append(cross);
    dismiss.addEventListener("click", hideNotice);
    els.notice.replaceChildren(el("p", "notice-title", "Results may be incomplete"), list, dismiss);
    els.notice.hidden = false;
  }

  function hideNotice() {
    els.notice.hidden = true;
    els.notice.replaceChildren();
  }

  // ---------------------------------------------------------------------------
  // Address bar
  // ---------------------------------------------------------------------------

  function syncLocation(params) {
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

  function restoreFromLocation() {
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

  // ---------------------------------------------------------------------------
  // Event handlers
  // ---------------------------------------------------------------------------

  function onSearchSubmit(event) {
    event.preventDefault();
    search({ force: true });
  }

  function onFiltersSubmit(event) {
    event.preventDefault();
    search({ force: true });
    // On phones the "Show results" button closes the drawer to reveal cards.
    if (filtersAreCollapsible()) {
      setFiltersOpen(false);
      els.resultsHeading.focus();
    }
  }

  function onFiltersKeydown(event) {
    // Four number fields and no default button means the browser would not
    // submit on Enter by itself.
    if (event.key === "Enter" && event.target instanceof HTMLInputElement) {
      event.preventDefault();
      clearTimeout(state.numberTimer);
      updateFilterCount();
      search({ force: true });
    }
  }

  function onNumberInput() {
    clearTimeout(state.numberTimer);
    updateFilterCount();
    state.numberTimer = window.setTimeout(onFiltersChanged, NUMBER_DEBOUNCE_MS);
  }

  function onColorClick(event) {
    const button = event.currentTarget;
    const pressed = button.getAttribute("aria-pressed") === "true";
    button.setAttribute("aria-pressed", String(!pressed));
    onFiltersChanged();
  }

  function onFacetClick(event) {
    const button = event.target.closest(".facet");
    if (button) applyFacet(button.dataset.facet, button.dataset.value);
  }

  function onFileChosen() {
    const file = els.fileInput.files && els.fileInput.files[0];
    if (file) useImageFile(file);
    // Reset so choosing the same file again still fires "change".
    els.fileInput.value = "";
  }

  function onImageUrlInput() {
    // Typing a URL replaces any file or catalogue image as the query.
    if (state.image && els.imageUrl.value.trim()) {
      releaseImage();
      renderQueryPreview();
    }
    clearTimeout(state.urlPreviewTimer);
    state.urlPreviewTimer = window.setTimeout(renderQueryPreview, URL_PREVIEW_DEBOUNCE_MS);
  }

  function onImageUrlPaste() {
    // Wait for the pasted text to land in the field, then search right away,
    // just as pasting an image does.
    window.setTimeout(() => {
      const url = parseImageUrl(els.imageUrl.value);
      if (url) useImageUrl(url.href);
    }, 0);
  }

  function onQueryImageError() {
    els.queryPreview.classList.add("is-broken");
    if (!els.queryLabel.textContent.endsWith("(no preview)")) {
      els.queryLabel.textContent = `${els.queryLabel.textContent} (no preview)`;
    }
  }

  function onPaste(event) {
    const data = event.clipboardData;
    if (!data) return;
    const file = imageFileFrom(data);
    if (file) {
      event.preventDefault();
      useImageFile(file);
      return;
    }
    // A link pasted outside any text field is almost certainly an image URL.
    if (!isEditable(event.target)) {
      const url = parseImageUrl(data.getData("text/plain"));
      if (url) {
        event.preventDefault();
        useImageUrl(url.href);
      }
    }
  }

  function carriesDroppable(event) {
    const types = Array.from((event.dataTransfer && event.dataTransfer.types) || []);
    // Plain text is left alone so it can still be dropped into the inputs.
    return types.includes("Files") || types.includes("text/uri-list");
  }

  function setDragOver(on) {
    els.dropzone.classList.toggle("is-dragover", on);
    els.dropzone.dataset.dragover = String(on);
  }

  function onDragEnter(event) {
    if (!carriesDroppable(event)) return;
    event.preventDefault();
    // dragenter/dragleave fire for every child; count to know when we really leave.
    state.dragDepth += 1;
    setDragOver(true);
  }

  function onDragOver(event) {
    if (!carriesDroppable(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    setDragOver(true);
  }

  function onDragLeave(event) {
    if (!carriesDroppable(event)) return;
    state.dragDepth = Math.max(0, state.dragDepth - 1);
    if (state.dragDepth === 0) setDragOver(false);
  }

  function onDrop(event) {
    if (!carriesDroppable(event)) return;
    event.preventDefault();
    state.dragDepth = 0;
    setDragOver(false);
    handleDroppedData(event.dataTransfer);
  }

  function handleDroppedData(data) {
    const file = imageFileFrom(data);
    if (file) {
      useImageFile(file);
      return;
    }
    if (data.files && data.files.length) {
      showError("That file is not an image. Choose a JPEG, PNG, GIF, TIFF or WebP file.");
      return;
    }
    const url = imageUrlFrom(data);
    if (url) useImageUrl(url);
  }

  // A file dropped just outside the zone would otherwise make the browser
  // navigate away to it; treat it as a drop on the zone instead.
  function onDocumentDragOver(event) {
    if (carriesDroppable(event) && !els.dropzone.contains(event.target)) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    }
  }

  function onDocumentDrop(event) {
    if (carriesDroppable(event) && !els.dropzone.contains(event.target)) {
      event.preventDefault();
      handleDroppedData(event.dataTransfer);
    }
  }

  function onGlobalKeydown(event) {
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

  function onResultsClick(event) {
    const strip = event.target.closest(".palette");
    if (strip && strip.dataset.palette) {
      searchByPalette(strip.dataset.palette);
      return;
    }
    const button = event.target.closest(".more-like");
    if (!button) return;
    const card = button.closest(".card");
    if (card) moreLikeThis(card);
  }

  /** A card's palette clicked: search the catalogue by those colours alone. */
  function searchByPalette(text) {
    clearQueryImage();
    els.q.value = "";
    setPalette(parsePalette(text));
    search({ force: true });
    window.scrollTo({ top: 0, behavior: prefersReducedMotion() ? "auto" : "smooth" });
    els.resultsHeading.focus({ preventScroll: true });
  }

  function onResultsKeydown(event) {
    const card = event.target;
    if (!(card instanceof HTMLElement) || !card.classList.contains("card")) return;
    const cards = Array.from(els.results.querySelectorAll(".card"));
    const index = cards.indexOf(card);
    const columns = countColumns(cards);
    let next;
    switch (event.key) {
      case "ArrowRight": next = index + 1; break;
      case "ArrowLeft": next = index - 1; break;
      case "ArrowDown": next = index + columns; break;
      case "ArrowUp": next = index - columns; break;
      case "Home": next = 0; break;
      case "End": next = cards.length - 1; break;
      case "Enter":
        event.preventDefault();
        moreLikeThis(card);
        return;
      default:
        return;
    }
    event.preventDefault();
    if (next >= 0 && next < cards.length) cards[next].focus();
  }

  /** Cards sharing the first card's row = columns of the responsive grid. */
  function countColumns(cards) {
    if (!cards.length) return 1;
    const top = cards[0].offsetTop;
    let columns = 0;
    for (const card of cards) {
      if (card.offsetTop !== top) break;
      columns += 1;
    }
    return Math.max(1, columns);
  }

  function moreLikeThis(card) {
    const imageId = card.dataset.imageId;
    if (!imageId) return;
    const img = card.querySelector(".thumb img");
    const preview = img && !img.hidden && img.src ? (img.currentSrc || img.src) : null;
    const title = textOr(card.querySelector(".card-title") && card.querySelector(".card-title").textContent, imageId);
    useCatalogueImage(imageId, preview, `More like “${title}”`);
    // "More like this" is about the picture; old keywords would quietly narrow it.
    els.q.value = "";
    search({ force: true });
    window.scrollTo({ top: 0, behavior: prefersReducedMotion() ? "auto" : "smooth" });
    // The clicked card is gone; the results heading is the nearest stable spot.
    els.resultsHeading.focus({ preventScroll: true });
  }

  // ---------------------------------------------------------------------------
  // Wiring
  // ---------------------------------------------------------------------------

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
    els.filtersToggle.addEventListener("click", () =>
      setFiltersOpen(els.filtersToggle.getAttribute("aria-expanded") !== "true"),
    );
    els.facets.addEventListener("click", onFacetClick);

    els.results.addEventListener("click", onResultsClick);
    els.results.addEventListener("keydown", onResultsKeydown);
    els.more.addEventListener("click", loadMore);
  }

  bindEvents();
  restoreFromLocation();
})();
