/*
 * One result card: thumbnail (with the matched region outlined for a duplicate), a
 * badge saying what kind of match and how strong, the catalogue's details, the palette.
 */

import { HEX_COLOUR, MATCH_LABELS, SCORE_MEANINGS, THUMB_ASPECT } from "./config.js";
import { canCompare } from "./compare-view.js";
import { el, els } from "./dom.js";
import { paletteParam, shareOf } from "./palette.js";
import { state } from "./state.js";
import { clamp01, present, textOr } from "./text.js";
import { safeHref, thumbnailUrlFor } from "./urls.js";

export function buildCard(hit) {
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
  if (hit.match === "duplicate" && canCompare()) {
    const compare = el("button", "button button--small compare-open", "Compare");
    compare.type = "button";
    compare.setAttribute("aria-label", `Compare your image with “${title}”`);
    actions.append(compare);
  }
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
