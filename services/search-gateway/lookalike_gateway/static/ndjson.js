/* Reading an NDJSON answer line by line as it streams, so cards show as soon as they come. */

/** Reads the body as NDJSON, calling onMessage per line as it arrives. */
export async function readNdjson(response, onMessage) {
  if (!response.body) {
    // Very old engines have no streaming body; still show the results.
    const text = await response.text();
    text.split("\n").forEach((line) => emitLine(line, onMessage));
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      // A chunk can end in the middle of a line: keep the tail for later.
      let newline = buffer.indexOf("\n");
      while (newline !== -1) {
        emitLine(buffer.slice(0, newline), onMessage);
        buffer = buffer.slice(newline + 1);
        newline = buffer.indexOf("\n");
      }
    }
    buffer += decoder.decode();
    emitLine(buffer, onMessage);
  } catch (error) {
    // Stop downloading a stream whose results will not be shown.
    reader.cancel().catch(() => {});
    throw error;
  }
}

function emitLine(line, onMessage) {
  const text = line.trim();
  if (!text) return;
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    // One damaged line should not throw away the rest of the results.
    console.warn("lookalike: skipped a line that is not JSON:", text.slice(0, 200));
    return;
  }
  if (message && typeof message === "object") onMessage(message);
}
