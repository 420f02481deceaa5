"""The static files from memory (app.web.middleware.assets): the bytes on disk, compressed once, cached for a year
at their content-hashed URLs, revalidated at their plain ones, and reached by the pages through an import map."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from pathlib import Path

import brotli
import plotly
from fastapi.testclient import TestClient

from app.web.config import ROOT

STATIC = ROOT / "static"
ON_DISK = {p.relative_to(STATIC).as_posix(): p for p in sorted(STATIC.rglob("*")) if p.is_file()}
PLOTLY = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
TEXT = (".js", ".css", ".html", ".json", ".svg")


def served(client: TestClient) -> dict[str, Path]:
    """The files on disk that are served: static/build/ only where it was made from the modules on disk, and of it
    not the brotli copies tools/bundle.mjs makes (<file>.br: its file's encoding)."""
    built = client.app.state.assets.build is not None  # type: ignore[attr-defined]
    return {p: f for p, f in ON_DISK.items() if p.startswith("build/") <= built and not p.endswith(".br")}


def raw_body(client: TestClient, url: str, encoding: str) -> tuple[dict[str, str], bytes]:
    """The response's headers and its body as sent (httpx would undo the encoding)."""
    with client.stream("GET", url, headers={"Accept-Encoding": encoding}) as r:
        assert r.status_code == 200, url
        return dict(r.headers), b"".join(r.iter_raw())


def test_every_static_file_is_served_as_it_is_on_disk_in_every_encoding(client: TestClient) -> None:
    assert len(ON_DISK) > 40
    for path, file in [*served(client).items(), ("vendor/plotly.min.js", PLOTLY)]:
        disk = file.read_bytes()
        headers, body = raw_body(client, f"/static/{path}", "identity")
        assert body == disk and "content-encoding" not in headers, path
        assert headers["x-content-type-options"] == "nosniff" and "content-security-policy" in headers
        zipped_headers, zipped = raw_body(client, f"/static/{path}", "gzip")
        br_headers, brd = raw_body(client, f"/static/{path}", "gzip, deflate, br, zstd")
        if path.endswith(TEXT) and len(disk) > 1000:  # a text file of any size is smaller compressed
            assert zipped_headers["content-encoding"] == "gzip" and gzip.decompress(zipped) == disk, path
            assert br_headers["content-encoding"] == "br" and brotli.decompress(brd) == disk, path
            assert len(brd) < len(zipped) < len(disk), path
            built_br = file.with_name(file.name + ".br")
            if built_br.is_file():  # the build's own copy, at brotli's best (Plotly's: 410 kB, not 444 at quality 9)
                assert brd == built_br.read_bytes(), path
            assert zipped_headers["vary"] == "Accept-Encoding"
        if not path.endswith(TEXT):  # images and fonts are compressed already: sent as they are
            assert zipped == disk and brd == disk and "content-encoding" not in br_headers, path


def test_the_client_chooses_the_encoding(client: TestClient) -> None:
    disk = ON_DISK["js/api.js"].read_bytes()
    for accept, chosen in [
        ("br;q=0, gzip", "gzip"),
        ("gzip;q=0, br;q=0.5", "br"),
        ("*", "br"),
        ("*, br;q=0", "gzip"),
        ("identity", None),
        ("", None),
        ("gzip;q=nonsense", None),
    ]:
        headers, body = raw_body(client, "/static/js/api.js", accept)
        assert headers.get("content-encoding") == chosen, accept
        assert {"gzip": gzip.decompress, "br": brotli.decompress, None: bytes}[chosen](body) == disk


def test_a_hashed_url_is_cached_for_a_year_and_a_plain_one_is_revalidated(client: TestClient) -> None:
    page = client.get("/").text
    url = re.search(r'href="(/static/css/unrolled\.css\?v=([0-9a-f]{10}))"', page)
    assert url is not None
    assert url[2] == hashlib.sha256(ON_DISK["css/unrolled.css"].read_bytes()).hexdigest()[:10]
    hashed = client.get(url[1])
    assert hashed.status_code == 200 and hashed.headers["cache-control"] == "public, max-age=31536000, immutable"
    plain = client.get("/static/css/unrolled.css", headers={"Accept-Encoding": "br"})
    assert plain.headers["cache-control"] == "no-cache"
    assert plain.content == hashed.content == ON_DISK["css/unrolled.css"].read_bytes()
    # revalidation: the ETag of any encoding names the same bytes; a 304 carries no body
    for etag in (plain.headers["etag"], hashed.headers["etag"], f'W/{plain.headers["etag"]}, "other"'):
        again = client.get("/static/css/unrolled.css", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"", etag
        assert again.headers["etag"] == hashed.headers["etag"] and again.headers["cache-control"] == "no-cache"
    assert client.get("/static/css/unrolled.css", headers={"If-None-Match": '"0123456789"'}).status_code == 200
    assert client.get("/static/css/unrolled.css?x=1").headers["cache-control"] == "no-cache"  # only v=<its hash>
    head = client.head(url[1], headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(hashed.content))


def test_a_hash_that_is_not_the_current_one_is_not_found(client: TestClient) -> None:
    # Not the current bytes under an old version's URL: a browser would keep them for a year as that version.
    r = client.get("/static/js/api.js?v=0000000000")
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "not_found" and "/static/js/api.js?v=0000000000" in r.json()["message"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_an_unknown_static_path_is_a_json_404_as_before(client: TestClient) -> None:
    for path in ("/static/js/nope.js", "/static/", "/static/../app/web/app.py", "/static/js/"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"] == "not_found", path
    # the Swagger UI files are still the package's, served by the app behind
    assert client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200


def test_static_responses_carry_the_same_security_headers_as_the_api(client: TestClient) -> None:
    names = ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy",
             "cross-origin-opener-policy")  # fmt: skip
    api = client.get("/healthz").headers
    for path in ("/static/favicon.svg", "/static/js/api.js"):
        static = client.get(path).headers
        assert {n: static[n] for n in names} == {n: api[n] for n in names}, path
    forged = client.get("/static/favicon.svg", headers={"host": "evil.com; script-src *"})
    assert "evil" not in forged.headers["content-security-policy"]


def test_a_page_maps_every_module_to_its_hashed_url_and_its_policy_allows_only_that_map(client: TestClient) -> None:
    r = client.get("/models/chars-lstm")
    found = re.search(r'<script type="importmap">(.*?)</script>', r.text, re.S)
    assert found is not None
    imports = json.loads(found[1])["imports"]
    assets = client.app.state.assets  # type: ignore[attr-defined]
    modules = {p for p in served(client) if p.startswith(("js/", "build/js/")) and p.endswith(".js")}
    assert set(imports) == {f"/static/{p}" for p in modules}
    for plain, hashed in imports.items():
        version = hashlib.sha256(ON_DISK[plain.removeprefix("/static/")].read_bytes()).hexdigest()[:10]
        assert hashed == f"{plain}?v={version}"
    # the policy names the map's exact text by its hash, and nothing else inline
    digest = base64.b64encode(hashlib.sha256(found[1].encode()).digest()).decode()
    script_src = r.headers["content-security-policy"].split("script-src")[1].split(";")[0]
    assert script_src.split() == ["'self'", f"'sha256-{digest}'"]
    # the page's own module (bundled, where static/build is current): preloaded with what it imports, and run from
    # its hashed URL
    entry = imports[f"/static/{assets.built('js/pages/model.js')}"]
    assert f'<script type="module" src="{entry}">' in r.text
    for url in assets.preloads("js/pages/model.js"):
        assert f'<link rel="modulepreload" href="{url}">' in r.text
    # a response that is not a page allows no inline script at all
    assert "script-src 'self';" in client.get("/static/js/api.js").headers["content-security-policy"]


def test_static_requests_are_counted_apart_from_the_routes(client: TestClient) -> None:
    def counted() -> int:
        line = re.search(r'unrolled_requests_total\{method="GET",route="/static",status="200"\} (\d+)',
                         client.get("/metrics").text)  # fmt: skip
        return int(line[1]) if line else 0

    before = counted()
    client.get("/static/js/api.js")
    client.get("/static/css/unrolled.css")
    assert counted() == before + 2


def test_a_page_is_sent_compressed_in_the_encoding_the_client_accepts(client: TestClient) -> None:
    """A tour page (90 kB of HTML: the scenes and the cards it carries) went out as it is to every student."""
    plain = client.get("/tour?scene=1", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert "Accept-Encoding" in plain.headers["vary"]
    for accept, chosen, decode in [("gzip", "gzip", gzip.decompress), ("gzip, br", "br", brotli.decompress)]:
        headers, body = raw_body(client, "/tour?scene=1", accept)
        assert headers["content-encoding"] == chosen and "Accept-Encoding" in headers["vary"], accept
        assert decode(body) == plain.content and int(headers["content-length"]) == len(body)
        assert len(body) < len(plain.content) / 3, accept
