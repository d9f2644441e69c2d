/*
 * Colour search: up to the server's number of colours, each with a share of the picture,
 * chosen with the picker or taken from a card's palette. The API's `palette` parameter
 * is `rrggbb:weight,...`.
 */

import { SERVER } from "./config.js";
import { el, els, prefersReducedMotion } from "./dom.js";
import { clearQueryImage } from "./query-image.js";
import { search } from "./search.js";
import { state } from "./state.js";

/** A palette weight as the catalogue gives it (0-1) -> a whole percentage, 1-100. */
export function shareOf(weight) {
  const value = Number(weight);
  return Number.isFinite(value) ? Math.max(1, Math.min(100, Math.round(value * 100))) : 1;
}

export function paletteParam(palette) {
  return palette.map((p) => `${p.hex.replace("#", "")}:${p.weight}`).join(",");
}

export function parsePalette(text) {
  const out = [];
  for (const part of String(text || "").split(",")) {
    const [hex, weight] = part.trim().split(":");
    if (!/^#?[0-9a-f]{6}$/i.test(hex || "")) continue;
    const w = Number(weight);
    out.push({ hex: `#${hex.replace("#", "").toLowerCase()}`, weight: w > 0 && w <= 100 ? w : 20 });
  }
  return out.slice(0, SERVER.maxPaletteColours);
}

export function setPalette(palette) {
  state.palette = palette.slice(0, SERVER.maxPaletteColours);
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
  els.paletteAdd.disabled = state.palette.length >= SERVER.maxPaletteColours;
}

/** The picker's colour joins the search; shares are spread evenly over the colours. */
export function onPaletteAdd() {
  const hex = String(els.palettePicker.value || "").toLowerCase();
  if (!/^#[0-9a-f]{6}$/.test(hex) || state.palette.length >= SERVER.maxPaletteColours) return;
  const colours = [...state.palette.map((p) => p.hex).filter((h) => h !== hex), hex];
  const share = Math.floor(100 / colours.length);
  setPalette(colours.map((h) => ({ hex: h, weight: share })));
  search({ force: true });
}

export function onPaletteChosenClick(event) {
  const chip = event.target.closest(".palette-pick");
  if (!chip) return;
  setPalette(state.palette.filter((_, i) => String(i) !== chip.dataset.index));
  search({ force: true });
}

export function onPaletteClear() {
  setPalette([]);
  search({ force: true });
}

/** A card's palette clicked: search the catalogue by those colours alone. */
export function searchByPalette(text) {
  clearQueryImage();
  els.q.value = "";
  setPalette(parsePalette(text));
  search({ force: true });
  window.scrollTo({ top: 0, behavior: prefersReducedMotion() ? "auto" : "smooth" });
  els.resultsHeading.focus({ preventScroll: true });
}
