/*
 * "Compare": the evidence that a duplicate card is the same artwork as the query. The
 * gateway's POST /v1/compare judges the pair again and draws both pictures side by side,
 * the part of each that lies on the other outlined and the matched points joined.
 */

import { el } from "./dom.js";
import { readErrorMessage } from "./search.js";
import { state } from "./state.js";
import { textOr } from "./text.js";

const COMPARE_ENDPOINT = "/v1/compare";
const EVIDENCE = {
  keypoints: "details matched under one geometry",
  whole_hash: "the whole picture's structure",
  appearance: "the small picture's structure and colour",
  hash: "hash codes alone",
};

const byId = (id) => document.getElementById(id);
const view = {
  dialog: byId("compare"),
  title: byId("compare-title"),
  status: byId("compare-status"),
  overlay: byId("compare-overlay"),
  facts: byId("compare-facts"),
  close: byId("compare-close"),
};

/** The query of the last search as side a, the card's catalogue image as side b. */
function compareForm(imageId) {
  const form = new FormData();
  const params = state.lastParams || {};
  if (params.image instanceof Blob) form.append("a", params.image, params.image.name || "image");
  else if (params.image_id) form.append("a_id", params.image_id);
  else if (params.image_url) form.append("a_url", params.image_url);
  else return null;
  form.append("b_id", imageId);
  form.append("overlay", "true");
  return form;
}

export function canCompare() {
  const params = state.lastParams || {};
  return Boolean(params.image || params.image_id || params.image_url);
}

export async function openCompare(card) {
  const imageId = card.dataset.imageId;
  const form = imageId ? compareForm(imageId) : null;
  if (!form) return;
  const title = textOr(card.querySelector(".card-title") && card.querySelector(".card-title").textContent, imageId);
  view.title.textContent = `Your image and “${title}”`;
  view.status.textContent = "Comparing…";
  view.overlay.hidden = true;
  view.overlay.removeAttribute("src");
  view.facts.replaceChildren();
  if (!view.dialog.open) view.dialog.showModal();
  try {
    const response = await fetch(COMPARE_ENDPOINT, { method: "POST", body: form });
    if (!response.ok) throw new Error(await readErrorMessage(response));
    showVerdict(await response.json());
  } catch (error) {
    view.status.textContent = `The comparison failed: ${error.message}`;
  }
}

function showVerdict(verdict) {
  const score = Math.round(Number(verdict.score) || 0);
  view.status.textContent = verdict.duplicate
    ? `Same artwork · ${score}%`
    : `Not the same artwork · ${score}% (the same artwork scores ${Math.round(verdict.threshold)} or more)`;
  if (typeof verdict.overlay === "string" && verdict.overlay.startsWith("data:image/png;base64,")) {
    view.overlay.src = verdict.overlay;
    view.overlay.alt = verdict.duplicate
      ? "Both pictures side by side, the part of each that lies on the other outlined"
      : "Both pictures side by side";
    view.overlay.hidden = false;
  }
  const pct = (v) => `${Math.round(Math.min(1, Math.max(0, Number(v) || 0)) * 100)}%`;
  const facts = [`Decided by ${EVIDENCE[verdict.evidence] || "its evidence"}.`];
  if (Array.isArray(verdict.inliers) && verdict.inliers.length) {
    facts.push(`${verdict.inliers.length} points matched.`);
  }
  if (verdict.duplicate) {
    facts.push(`${pct(verdict.overlap_a)} of your image lies on it; it shows ${pct(verdict.overlap_b)} of this one.`);
  }
  view.facts.replaceChildren(...facts.map((text) => el("li", null, text)));
}

export function wireCompare() {
  view.close.addEventListener("click", () => view.dialog.close());
}
