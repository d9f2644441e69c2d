/*
 * What a person does with the cards: "More like this", "Compare" on a duplicate, a palette
 * clicked to search by its colours, and arrow keys that move through the grid as it is
 * laid out.
 */

import { openCompare } from "./compare-view.js";
import { els, prefersReducedMotion } from "./dom.js";
import { searchByPalette } from "./palette.js";
import { useCatalogueImage } from "./query-image.js";
import { search } from "./search.js";
import { textOr } from "./text.js";

export function onResultsClick(event) {
  const strip = event.target.closest(".palette");
  if (strip && strip.dataset.palette) {
    searchByPalette(strip.dataset.palette);
    return;
  }
  const compare = event.target.closest(".compare-open");
  if (compare && compare.closest(".card")) {
    openCompare(compare.closest(".card"));
    return;
  }
  const button = event.target.closest(".more-like");
  if (!button) return;
  const card = button.closest(".card");
  if (card) moreLikeThis(card);
}

export function onResultsKeydown(event) {
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
