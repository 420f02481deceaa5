// Numbers typed or pasted for a series model.

/**
 * Split at commas, semicolons, spaces and new lines. What does not read as a number is sent as it is, so that
 * the API names it and its step (its 422 message is what the page shows).
 */
export function parseNumbers(text) {
  return text
    .split(/[\s,;]+/)
    .filter((s) => s !== "")
    .map((s) => (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(s) ? Number(s) : s));
}

/** A series example's numbers as the input box shows them. */
export const exampleText = (ex) => (ex?.values ?? []).map((v) => (Array.isArray(v) ? v.join(" ") : String(v))).join(", ");

/** Frames of several numbers each, one a line or a semicolon between them (a series classifier's input). */
export const parseFrames = (text) =>
  text
    .split(/[\n;]+/)
    .map((line) => parseNumbers(line))
    .filter((row) => row.length > 0);

/** A series classifier's example as the input box shows it: one frame a line. */
export const exampleFrames = (ex) => (ex?.values ?? []).map((v) => (Array.isArray(v) ? v.join(" ") : String(v))).join("\n");
