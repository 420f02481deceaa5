"""The static files, served from memory in front of the router: no path resolution, no routing, no middleware.

At start-up every file under static/ (and Plotly's bundle, from the plotly package) is read once: its bytes, a
content hash, and gzip and brotli copies of the text types where they are smaller. A request for /static/<path> is
then a prefix check, a dict lookup and a choice of encoding; nothing is compressed, stat'ed or routed per request.

Two URLs per file:
- `/static/<path>?v=<hash>` (what the pages link to, see `Assets.url` and `Assets.import_map`): the bytes of that
  version, for a year (`immutable`): a repeat visit asks for nothing. The hash is in the query, not in the path, so
  that a module's relative imports still resolve to plain URLs, which the page's import map sends to hashed ones.
  A hash that is not the current one answers 404: the URL promises those bytes, and other bytes under it would be
  kept by a browser (or a proxy) for a year as that version; a page of the previous release is reloaded instead.
- `/static/<path>`: the current bytes, revalidated on every use (`no-cache` and an ETag: a 304 from memory).

The build (tools/bundle.mjs, run by `make install` and the Dockerfile: esbuild from npm) writes static/build/: the
pages' modules bundled into a few chunks, and Plotly's partial bundle (only the trace types the app draws). Where
it is there and made from the modules on disk (its manifest's sources hash), a page's `asset('js/pages/x.js')` is
the bundle's URL (and `vendor/plotly.min.js` the partial bundle's): about 12 requests for a cold visit instead of
45, and 0.4 MB of Plotly instead of 1.2. Where it is missing (no Node.js) or stale (a module edited since), the
sources are served as they are, and Plotly's full bundle from the plotly package.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import json
import logging
import mimetypes
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import brotli
import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from app.web.errors import error_body
from app.web.middleware.metrics import Metrics

log = logging.getLogger("unrolled.assets")
PREFIX = "/static/"
IMMUTABLE = b"public, max-age=31536000, immutable"
REVALIDATE = b"no-cache"
# Types served compressed when that is smaller; the others (images, fonts) are compressed already or tiny.
TEXT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
BUILD = "build/"  # below /static/: tools/bundle.mjs's output
MANIFEST = BUILD + "manifest.json"
ENCODINGS = ("br", "gzip")  # in order of preference, where the client accepts both
NEGOTIATED_KEPT = 64  # distinct Accept-Encoding values remembered (browsers send a handful)


def content_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:10]


# Not brotli's best quality (11) on a file over BROTLI_BEST_UP_TO: Plotly's 4.8 MB bundle took 8.5 s at 11 against
# 0.4 s at 9, for 1.11 MB against 1.23 (measured on this 2-core machine): seconds every start would wait before it
# is ready. Our own modules and styles (under 100 kB each) take the best.
BROTLI_BEST_UP_TO = 1 << 20


@functools.lru_cache(maxsize=512)
def compressed(raw: bytes, version: str, built_br: bytes | None = None) -> dict[str, bytes]:
    """The br and gzip copies of a text file where smaller than it. Kept per content for the process, so that the
    apps one process makes (the tests make hundreds) compress each file once; `version` (its hash) is the key's
    cheap part, `raw` settles a clash. `built_br`: the build's own brotli copy (tools/bundle.mjs writes <file>.br at
    the best quality and window), taken where it is the file's."""
    if built_br is not None and brotli.decompress(built_br) == raw:
        br = built_br
    else:
        br = brotli.compress(raw, quality=11 if len(raw) <= BROTLI_BEST_UP_TO else 9)
    copies = {"br": br, "gzip": gzip.compress(raw, compresslevel=9, mtime=0)}
    return {name: body for name, body in copies.items() if len(body) < len(raw)}


@dataclass(frozen=True)
class Asset:
    """One file as served: its bytes and, where smaller, their compressed copies (encoding → bytes)."""

    path: str  # below /static/, e.g. "js/pages/model.js"
    raw: bytes
    media_type: str
    version: str  # the content hash
    encoded: Mapping[str, bytes]

    @classmethod
    def of(cls, path: str, raw: bytes, built_br: bytes | None = None) -> Asset:
        suffix = Path(path).suffix.lower()
        media_type = TEXT_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"
        encoded: dict[str, bytes] = {}
        version = content_hash(raw)
        if suffix in TEXT_TYPES:
            encoded = compressed(raw, version, built_br)
        return cls(path, raw, media_type, version, encoded)

    @property
    def query(self) -> bytes:
        """The query string of its hashed URL."""
        return b"v=" + self.version.encode()

    def etag(self, encoding: str | None) -> bytes:
        """A strong ETag per representation (RFC 9110: a gzip copy is not the same bytes as the file)."""
        return f'"{self.version}{"-" + encoding if encoding else ""}"'.encode()


def sources_hash(files: Mapping[str, bytes]) -> str:
    """What tools/bundle.mjs records as the sources of a build: every module under js/ (path below /static/ →
    bytes), in the order of their paths."""
    digest = hashlib.sha256()
    for path in sorted(p for p in files if p.startswith("js/") and p.endswith(".js")):
        digest.update(path.encode() + b"\0" + files[path] + b"\0")
    return digest.hexdigest()


def current_build(files: Mapping[str, bytes]) -> dict[str, Any] | None:
    """The build's manifest if the build was made from these sources; None if there is none, or it is stale."""
    raw = files.get(MANIFEST)
    if raw is None:
        return None
    manifest: dict[str, Any] = json.loads(raw)
    if manifest.get("sources") != sources_hash(files):
        log.warning("static/build was made from other modules than static/js's: serving the modules one by one "
                    "(run `make install`, or `npm ci && node tools/bundle.mjs`, to bundle them again)")  # fmt: skip
        return None
    return manifest


class Assets:
    """Every static file by its path below /static/, read once; with a current build (current_build), a page's
    module and Plotly are its bundles."""

    def __init__(self, assets: Iterable[Asset], build: Mapping[str, Any] | None = None) -> None:
        self.files: dict[str, Asset] = {a.path: a for a in assets}
        self.build = build
        self.import_map = self._import_map()
        # The policy's allowance for the pages' one inline script, the import map (CSP hash of its exact text).
        digest = hashlib.sha256(self.import_map.encode()).digest()
        self.import_map_hash = "'sha256-" + base64.b64encode(digest).decode() + "'"

    @classmethod
    def load(cls, folder: Path, extra: Mapping[str, Path] | None = None, use_build: bool = True) -> Assets:
        """Every file under `folder`, and `extra` files (path below /static/ → file), e.g. a vendored bundle; its
        build/ only if `use_build` and current."""
        found = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        found.update(extra or {})
        files = {path: file.read_bytes() for path, file in found.items()}
        build = current_build(files) if use_build else None
        if build is None:  # missing or stale: none of it is served
            files = {path: raw for path, raw in files.items() if not path.startswith(BUILD)}
        # the build's brotli copies (<file>.br) are its files' encodings, not files of their own
        built_br = {
            p.removesuffix(".br"): files.pop(p) for p in list(files) if p.startswith(BUILD) and p.endswith(".br")
        }
        return cls((Asset.of(path, raw, built_br.get(path)) for path, raw in files.items()), build)

    def url(self, path: str) -> str:
        """The content-hashed URL of a file below /static/ (a jinja global of the pages: `asset('css/x.css')`): its
        build's (a bundled module, Plotly's partial bundle) where the build has one."""
        path = self.built(path)
        return f"{PREFIX}{path}?v={self.files[path].version}"

    def built(self, path: str) -> str:
        """The path of what is served for `path`: its build's, if the build has it."""
        return BUILD + path if self.build is not None and BUILD + path in self.files else path

    def preloads(self, path: str) -> list[str]:
        """The hashed URLs a page's module loads at once: itself and, bundled, the chunks it imports (the build's
        manifest lists them), so the browser asks for them all together instead of one import after another."""
        chunks = (self.build or {}).get("imports", {}).get(self.built(path), [])
        return [self.url(path), *(f"{PREFIX}{c}?v={self.files[c].version}" for c in chunks if c in self.files)]

    def _import_map(self) -> str:
        """Each ES module's plain URL → its hashed URL. A module imports its neighbours by relative paths, which
        resolve to plain URLs; the browser sends them to the hashed ones, so no build step rewrites an import."""
        modules = sorted(p for p in self.files if p.startswith(("js/", BUILD + "js/")) and p.endswith(".js"))
        imports = {PREFIX + p: f"{PREFIX}{p}?v={self.files[p].version}" for p in modules}  # each its own, not built
        return json.dumps({"imports": imports}, separators=(",", ":"))


def accepted(header: bytes) -> tuple[str, ...]:
    """The encodings of ENCODINGS an Accept-Encoding header accepts (q > 0, by name or by "*")."""
    weights: dict[str, float] = {}
    for part in header.decode("latin-1").lower().split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[name.strip()] = q
    star = weights.get("*", 0.0)
    return tuple(e for e in ENCODINGS if weights.get(e, star) > 0)


class StaticAssets:
    """Pure ASGI, outermost: GET/HEAD /static/<a file of `assets`> is answered here; everything else (other
    methods, the Swagger UI mount, unknown files: the app's JSON 404) goes on to the app.

    `headers(scope)` gives the security headers every response carries (app.web.middleware.security); each request
    is counted in `metrics` under the route "/static", as the app's own requests are under theirs."""

    def __init__(
        self,
        app: ASGIApp,
        assets: Assets,
        headers: Callable[[Scope], list[tuple[bytes, bytes]]],
        metrics: Metrics,
    ) -> None:
        self.app = app
        self.assets = assets
        self.headers = headers
        self.metrics = metrics
        self.negotiated: dict[bytes, tuple[str, ...]] = {}

    def _accepted(self, header: bytes) -> tuple[str, ...]:
        known = self.negotiated.get(header)
        if known is None:
            known = accepted(header)
            if len(self.negotiated) < NEGOTIATED_KEPT:
                self.negotiated[header] = known
        return known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PREFIX) or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        asset = self.assets.files.get(path[len(PREFIX) :])
        if asset is None:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = await self._answer(scope, send, asset)
        self.metrics.observe(scope["method"], "/static", status, time.perf_counter() - start)

    async def _answer(self, scope: Scope, send: Send, asset: Asset) -> int:
        query: bytes = scope.get("query_string", b"")
        hashed = query == asset.query
        if query.startswith(b"v=") and not hashed:
            message = f"{PREFIX}{asset.path}?{query.decode('latin-1')} is not its current version: reload the page"
            body = orjson.dumps(error_body("not_found", message))
            await self._send(scope, send, 404, [(b"content-type", b"application/json")], body)
            return 404
        cache = IMMUTABLE if hashed else REVALIDATE  # any other query is the plain URL's: never kept for a year
        encoding: str | None = None
        request_headers = scope["headers"]
        if asset.encoded:
            wanted = next((v for k, v in request_headers if k == b"accept-encoding"), b"")
            encoding = next((e for e in self._accepted(wanted) if e in asset.encoded), None) if wanted else None
        etag = asset.etag(encoding)
        headers = [(b"etag", etag), (b"cache-control", cache)]
        if asset.encoded:
            headers.append((b"vary", b"Accept-Encoding"))
        match = next((v for k, v in request_headers if k == b"if-none-match"), None)
        if match is not None and _matches(match, asset):
            await self._send(scope, send, 304, headers, b"")
            return 304
        body = asset.raw if encoding is None else asset.encoded[encoding]
        headers.append((b"content-type", asset.media_type.encode()))
        if encoding is not None:
            headers.append((b"content-encoding", encoding.encode()))
        await self._send(scope, send, 200, headers, body)
        return 200

    async def _send(
        self, scope: Scope, send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        length = [] if status == 304 else [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers + length + self.headers(scope)})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def _matches(if_none_match: bytes, asset: Asset) -> bool:
    """Whether If-None-Match names any representation of the file's current bytes (weak comparison, RFC 9110)."""
    if if_none_match.strip() == b"*":
        return True
    tags = {t.strip().removeprefix(b"W/") for t in if_none_match.split(b",")}
    return any(asset.etag(e) in tags for e in (None, *ENCODINGS))
