/* What the page tells a person: an error in plain words, and a done line's warnings. */

import { el, els } from "./dom.js";
import { present } from "./text.js";

export function showError(message) {
  const title = el("p", "error-title", "Search failed");
  const detail = el("p", "error-message", message);
  els.error.replaceChildren(title, detail);
}

export function clearError() {
  els.error.replaceChildren();
}

export function showWarnings(warnings) {
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

export function hideNotice() {
  els.notice.hidden = true;
  els.notice.replaceChildren();
}
