/* Addresses: the gateway's thumbnails, and URLs from people or catalogue data, checked. */

import { present } from "./text.js";

export function thumbnailUrlFor(imageId) {
  return `/v1/images/${encodeURIComponent(imageId)}/thumbnail`;
}

/** An absolute http(s) URL typed or pasted by the person, or null. */
export function parseImageUrl(value) {
  try {
    const url = new URL(String(value).trim());
    return url.protocol === "http:" || url.protocol === "https:" ? url : null;
  } catch {
    return null;
  }
}

/** Link target from catalogue data; refuses javascript: and friends. */
export function safeHref(value) {
  if (!present(value)) return null;
  try {
    const url = new URL(String(value), window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}
