/*
 * The results grid as an answer streams in: cards placed by rank, an image shown once,
 * then the done line's count, warnings, facets and whether there are more.
 */

import { buildCard } from "./cards.js";
import { els } from "./dom.js";
import { renderFacets } from "./facets.js";
import { showWarnings } from "./messages.js";
import { state } from "./state.js";
import { plural, present } from "./text.js";

export function setResultsState(value) {
  els.results.dataset.state = value;
  els.results.setAttribute("aria-busy", String(value === "loading"));
}

export function setStatus(text) {
  els.status.textContent = text;
}

export function clearResults() {
  els.results.replaceChildren();
  state.cardsById.clear();
  state.batch = [];
}

export function renderHit(hit) {
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

export function renderDone(message, append) {
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

export function updateMoreButton() {
  els.more.disabled = false;
  els.more.textContent = "More results";
  els.more.hidden = !state.nextCursor;
}
