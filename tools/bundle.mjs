// The pages' ES modules bundled, and Plotly's partial bundle, into static/build/ (served by app/web/middleware/
// assets.py in place of the sources: fewer requests and bytes on a cold visit). Run by `make install` (and the
// Dockerfile) after `npm ci`; nothing here runs or is fetched when the server runs.
//
//   node tools/bundle.mjs
//
// Entries: every module a template names (its `entry` and base.html's chrome.js), bundled by esbuild with code
// splitting, so that what two entries share (the page's one event bus, bus.js) is one module in one chunk, as it
// is when the browser loads the sources. static/build/manifest.json records the hash of the sources the bundles
// were made from: a server whose static/js differs from it (a module edited since) serves the sources instead.

import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants } from "node:zlib";
import { build } from "esbuild";
import { files, posix, root, sourcesHash, statics } from "./sources-hash.mjs";

const out = join(statics, "build");

/** The modules the templates name: {% set entry = "js/…" %} and asset('js/…'). */
function entries() {
  const named = new Set();
  for (const file of files(join(root, "templates"), ".html")) {
    for (const m of readFileSync(file, "utf8").matchAll(/["'](js\/[\w/.-]+\.js)["']/g)) named.add(m[1]);
  }
  return [...named].sort().map((path) => join(statics, path));
}

rmSync(out, { recursive: true, force: true });
const { metafile } = await build({
  metafile: true,
  entryPoints: entries(),
  outdir: join(out, "js"),
  outbase: join(statics, "js"),
  bundle: true,
  splitting: true,
  format: "esm",
  target: "es2020",
  minifyWhitespace: true,
  minifySyntax: true, // names are kept: an error in the browser's console still names our functions
  chunkNames: "chunks/[name]-[hash]",
  legalComments: "none",
  logLevel: "warning",
});
// Plotly, with only the trace types the app draws (scatter, bar, heatmap: the cartesian partial bundle)
mkdirSync(join(out, "vendor"), { recursive: true });
const plotly = join(root, "node_modules", "plotly.js-cartesian-dist-min", "plotly-cartesian.min.js");
copyFileSync(plotly, join(out, "vendor", "plotly.min.js"));
// Each bundled entry's chunks, every one it imports however deep (paths below /static/): a page preloads them all.
const imports = {};
const below = (path) => posix(join(root, path));
for (const [file, output] of Object.entries(metafile.outputs)) {
  if (!output.entryPoint) continue;
  const seen = new Set();
  const visit = (f) =>
    metafile.outputs[f].imports
      .filter((i) => i.kind === "import-statement" && !seen.has(i.path))
      .forEach((i) => {
        seen.add(i.path);
        visit(i.path);
      });
  visit(file);
  imports[below(file)] = [...seen].map(below).sort();
}
writeFileSync(join(out, "manifest.json"), JSON.stringify({ sources: sourcesHash(), imports }, null, 1) + "\n");
// Each bundle's brotli copy at the best quality and window (<file>.br), made here once: the server would take 3 s of
// CPU at every start for Plotly's (it compresses what has no copy, Plotly at quality 9: 444 kB, not 410).
for (const file of files(out, ".js")) {
  const raw = readFileSync(file);
  const params = {
    [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
    [constants.BROTLI_PARAM_LGWIN]: constants.BROTLI_MAX_WINDOW_BITS,
    [constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
  };
  writeFileSync(file + ".br", brotliCompressSync(raw, { params }));
}
console.log(`static/build: ${entries().length} entries bundled, Plotly's cartesian bundle`);
