/*
 * Images arriving by drag and drop or the clipboard: a file, or the address of a picture
 * dragged from another page. A drop anywhere on the page counts, so the browser never
 * navigates away to a file dropped just outside the zone.
 */

import { els, isEditable } from "./dom.js";
import { showError } from "./messages.js";
import { isImageFile, useImageFile, useImageUrl } from "./query-image.js";
import { state } from "./state.js";
import { parseImageUrl } from "./urls.js";

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

export function onPaste(event) {
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

export function onDragEnter(event) {
  if (!carriesDroppable(event)) return;
  event.preventDefault();
  // dragenter/dragleave fire for every child; count to know when we really leave.
  state.dragDepth += 1;
  setDragOver(true);
}

export function onDragOver(event) {
  if (!carriesDroppable(event)) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
  setDragOver(true);
}

export function onDragLeave(event) {
  if (!carriesDroppable(event)) return;
  state.dragDepth = Math.max(0, state.dragDepth - 1);
  if (state.dragDepth === 0) setDragOver(false);
}

export function onDrop(event) {
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
export function onDocumentDragOver(event) {
  if (carriesDroppable(event) && !els.dropzone.contains(event.target)) {
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  }
}

export function onDocumentDrop(event) {
  if (carriesDroppable(event) && !els.dropzone.contains(event.target)) {
    event.preventDefault();
    handleDroppedData(event.dataTransfer);
  }
}
