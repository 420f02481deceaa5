// The hash of the modules a build is made from (static/build/manifest.json's "sources"), as
// app.web.middleware.assets.sources_hash computes it: every .js file under static/js, by its path below static/
// in order, path and bytes. `node tools/sources-hash.mjs` prints it.

import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const statics = join(root, "static");

/** A path below static/, with forward slashes. */
export const posix = (path) => relative(statics, path).split(sep).join("/");

/** The files under `folder` whose names end with `suffix`, in the order of their paths below static/. */
export function files(folder, suffix) {
  return readdirSync(folder, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(suffix))
    .map((e) => join(e.parentPath ?? e.path, e.name))
    .sort((a, b) => (posix(a) < posix(b) ? -1 : posix(a) > posix(b) ? 1 : 0));
}

export function sourcesHash() {
  const hash = createHash("sha256");
  for (const file of files(join(statics, "js"), ".js")) {
    hash.update(posix(file) + "\0");
    hash.update(readFileSync(file));
    hash.update("\0");
  }
  return hash.digest("hex");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(sourcesHash());
