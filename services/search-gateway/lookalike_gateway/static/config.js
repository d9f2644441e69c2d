/*
 * What the page needs to know before it does anything: its own constants, and the ones
 * the gateway decides (page size, facets, limits), which the gateway writes into the page
 * so they can never disagree with what it does.
 */

export const SEARCH_ENDPOINT = "/v1/search";
export const NUMBER_DEBOUNCE_MS = 450;
export const URL_PREVIEW_DEBOUNCE_MS = 400;

// Must match --thumb-aspect in style.css. Thumbnails are letterboxed by
// object-fit: contain, so the region outline is placed using this ratio.
export const THUMB_ASPECT = 1;

export const MATCH_LABELS = Object.freeze({
  duplicate: "Same artwork",
  similar: "Looks like",
  text: "Keyword",
});

// Every score is 0-100; what it measures differs by kind, and the badge's title says so.
export const SCORE_MEANINGS = Object.freeze({
  duplicate: "how sure the matcher is that this is the same artwork",
  similar: "how alike the two pictures look",
  text: "relevance to your words, against the best match",
  colour: "how much of the chosen colours this image holds",
});

// Browsers sometimes leave File.type empty (TIFF on some systems), so the
// extension is a second chance to recognise an image.
export const IMAGE_NAME = /\.(jpe?g|jfif|png|gif|tiff?|webp|bmp|avif|heic|heif)$/i;
export const HEX_COLOUR = /^#(?:[0-9a-f]{3}|[0-9a-f]{4}|[0-9a-f]{6}|[0-9a-f]{8})$/i;

// API field name -> input id.
export const NUMBER_FIELDS = Object.freeze({
  min_width: "min-width",
  min_height: "min-height",
  year_from: "year-from",
  year_to: "year-to",
});

// Which facets there are, and their order, is the server's; how each is titled is the
// page's. A facet the page has no title for still shows, under its own name.
export const FACET_TITLES = Object.freeze({
  colors: "Colour",
  format: "Format",
  orientation: "Orientation",
  decade: "Decade",
  subjects: "Subject",
});

// Fields mirrored in the address bar so a search can be bookmarked or shared
// (an uploaded file cannot be, so "image" is deliberately absent).
export const LOCATION_KEYS = Object.freeze([
  "q", "image_id", "image_url", "colors", "palette", "format", "orientation",
  "min_width", "min_height", "year_from", "year_to",
]);

/** The gateway's own settings, from the <meta> it fills in when it serves the page. */
function readServerConfig() {
  const meta = document.querySelector('meta[name="lookalike-page-config"]');
  let config;
  try {
    config = JSON.parse(meta ? meta.content : "");
  } catch {
    config = null;
  }
  if (!config || !Number.isInteger(config.page_size) || !Array.isArray(config.facets)) {
    // Opened from disk or through something that rewrote it: the page cannot search right.
    throw new Error("lookalike: the page was served without the gateway's page config");
  }
  return Object.freeze({
    pageSize: config.page_size,
    maxPageSize: config.max_page_size,
    facets: Object.freeze(config.facets.map(String)),
    maxPaletteColours: config.max_palette_colours,
    // A catalogue profile's own filters: [{ name, label, kind: "term" | "range" }].
    filters: Object.freeze((Array.isArray(config.filters) ? config.filters : []).map((f) =>
      Object.freeze({ name: String(f.name), label: String(f.label || f.name), kind: String(f.kind) }))),
  });
}

export const SERVER = readServerConfig();
