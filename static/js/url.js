// View state lives in the URL query, so a slide can link to one moment: read once, written back with
// history.replaceState (throttled while the animation plays).

const TYPES = {
  int: (s) => (/^-?\d+$/.test(s) ? Number.parseInt(s, 10) : undefined),
  float: (s) => (Number.isFinite(Number.parseFloat(s)) ? Number.parseFloat(s) : undefined),
  str: (s) => s,
  bool: (s) => ["1", "true", "yes", "on"].includes(s.toLowerCase()),
};

/** Read the query with a spec {name: {type, default, values?}}: unknown or invalid values fall back. */
export function readParams(spec) {
  const q = new URLSearchParams(window.location.search);
  const out = {};
  for (const [name, { type = "str", default: fallback, values }] of Object.entries(spec)) {
    const raw = q.get(name);
    let value = raw === null ? undefined : TYPES[type](raw);
    if (values && !values.includes(value)) value = undefined;
    out[name] = value === undefined ? fallback : value;
  }
  return out;
}

let pending = {};
let timer = null;

function flush() {
  timer = null;
  const url = new URL(window.location.href);
  for (const [k, v] of Object.entries(pending)) {
    if (v === null || v === undefined || v === "" || v === false) url.searchParams.delete(k);
    else url.searchParams.set(k, v === true ? "1" : String(v));
  }
  pending = {};
  const next = url.pathname + (url.search ? url.search : "") + url.hash;
  if (next !== window.location.pathname + window.location.search + window.location.hash) {
    window.history.replaceState(null, "", next);
  }
}

/** Merge values into the URL; null, "" and false remove a key. Writes at most every 400 ms. */
export function writeParams(values, { now = false } = {}) {
  Object.assign(pending, values);
  if (now) {
    if (timer) clearTimeout(timer);
    flush();
  } else if (!timer) {
    timer = setTimeout(flush, 400);
  }
}

/**
 * Carry the input to the links that keep it (the [data-keep] ones: the same input on another page): each value is
 * set, null removes its key, undefined leaves it as it is.
 */
export function keepLinks(values) {
  for (const a of document.querySelectorAll("[data-keep]")) {
    const url = new URL(a.href, window.location.href);
    for (const [k, v] of Object.entries(values)) {
      if (v === null) url.searchParams.delete(k);
      else if (v !== undefined) url.searchParams.set(k, v);
    }
    a.href = url.pathname + url.search;
  }
}

/** A link to another page of the app with a query (null values left out). */
export function link(path, query = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
