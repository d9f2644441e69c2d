/*
 * The query image: one at a time, from a file (chosen, pasted, dropped), a catalogue id
 * ("More like this") or a typed URL, and its preview in the drop zone.
 */

import { IMAGE_NAME, URL_PREVIEW_DEBOUNCE_MS } from "./config.js";
import { els } from "./dom.js";
import { showError } from "./messages.js";
import { search } from "./search.js";
import { state } from "./state.js";
import { textOr } from "./text.js";
import { parseImageUrl, thumbnailUrlFor } from "./urls.js";

export function isImageFile(file) {
  if (!file) return false;
  if (file.type) return file.type.startsWith("image/");
  return IMAGE_NAME.test(file.name || "");
}

function releaseImage() {
  if (state.image && state.image.objectUrl) URL.revokeObjectURL(state.image.objectUrl);
  state.image = null;
}

export function hasQueryImage() {
  return Boolean(state.image) || els.imageUrl.value.trim() !== "";
}

export function useImageFile(file) {
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

export function useImageUrl(url) {
  releaseImage();
  els.imageUrl.value = url;
  renderQueryPreview();
  search({ force: true });
}

export function useCatalogueImage(imageId, previewUrl, label) {
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

export function clearQueryImage() {
  const hadFocus = els.queryPreview.contains(document.activeElement);
  releaseImage();
  els.imageUrl.value = "";
  els.fileInput.value = "";
  clearTimeout(state.urlPreviewTimer);
  renderQueryPreview();
  // The clear button disappears with the preview; keep focus somewhere useful.
  if (hadFocus) els.pickFile.focus();
}

export function renderQueryPreview() {
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

export function onFileChosen() {
  const file = els.fileInput.files && els.fileInput.files[0];
  if (file) useImageFile(file);
  // Reset so choosing the same file again still fires "change".
  els.fileInput.value = "";
}

export function onImageUrlInput() {
  // Typing a URL replaces any file or catalogue image as the query.
  if (state.image && els.imageUrl.value.trim()) {
    releaseImage();
    renderQueryPreview();
  }
  clearTimeout(state.urlPreviewTimer);
  state.urlPreviewTimer = window.setTimeout(renderQueryPreview, URL_PREVIEW_DEBOUNCE_MS);
}

export function onImageUrlPaste() {
  // Wait for the pasted text to land in the field, then search right away,
  // just as pasting an image does.
  window.setTimeout(() => {
    const url = parseImageUrl(els.imageUrl.value);
    if (url) useImageUrl(url.href);
  }, 0);
}

export function onQueryImageError() {
  els.queryPreview.classList.add("is-broken");
  if (!els.queryLabel.textContent.endsWith("(no preview)")) {
    els.queryLabel.textContent = `${els.queryLabel.textContent} (no preview)`;
  }
}
