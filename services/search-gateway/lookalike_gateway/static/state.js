/* What the page remembers between events; every module reads and writes this one object. */

export const state = {
  // The chosen query image, or null. The URL field is read live instead,
  // so typing there needs no bookkeeping.
  //   { kind: "file", file, key, previewUrl, objectUrl, label }
  //   { kind: "id", id, key, previewUrl, label }
  image: null,
  imageKey: 0,
  controller: null,
  lastParams: null,
  lastSignature: "",
  nextCursor: null,
  cardsById: new Map(),
  batch: [], // cards of the page currently streaming, kept in rank order
  cardSerial: 0,
  numberTimer: 0,
  urlPreviewTimer: 0,
  dragDepth: 0,
  // Colour search: [{ hex: "#rrggbb", weight: 1-100 }], at most the server's limit.
  palette: [],
};
