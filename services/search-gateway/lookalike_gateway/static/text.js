/* Turning catalogue values, which may be missing or of any type, into text to show. */

export function present(value) {
  return value !== undefined && value !== null && String(value).trim() !== "";
}

export function textOr(value, fallback) {
  return present(value) ? String(value).trim() : fallback;
}

export function capitalise(word) {
  const text = String(word);
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function clamp01(value) {
  const n = Number(value);
  return Number.isFinite(n) ? Math.min(1, Math.max(0, n)) : 0;
}

export function plural(n, one, many) {
  return n === 1 ? one : many;
}

export function formatCount(value) {
  const n = Number(value);
  return Number.isFinite(n) ? n.toLocaleString() : "";
}
