"""The pages in real Chromium load every module from its content-hashed URL (through the import map, under the
strict policy), and a repeat visit asks the server for no static file at all."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote, urlsplit

import httpx
from playwright.sync_api import Page, Response

from app.web.config import ROOT
from tests.browser.conftest import Recorder, assert_clean, wait_loaded
from tests.conftest import LiveServer

# An input no built-in example has.
PAGES = [f"/models/chars-lstm?text={quote('zebras hum')}", f"/compare?task=test-chars&text={quote('quiet oxen')}"]


def version(path: str) -> str:
    return hashlib.sha256((ROOT / "static" / path).read_bytes()).hexdigest()[:10]


def static_requests(live: LiveServer) -> int:
    """GET /static requests the server answered, by its own count."""
    text = httpx.get(live.url + "/metrics").text
    return sum(int(n) for n in re.findall(r'unrolled_requests_total\{method="GET",route="/static",[^}]*\} (\d+)', text))


def test_every_module_comes_from_its_hashed_url_and_a_repeat_visit_fetches_none(
    page: Page, recorder: Recorder, live: LiveServer
) -> None:
    policies: list[str] = []

    def policy_of_document(response: Response) -> None:
        if response.request.resource_type == "document":
            policies.append(response.headers.get("content-security-policy", ""))

    page.on("response", policy_of_document)
    for path in PAGES:
        recorder.requests.clear()
        page.goto(live.url + path)
        wait_loaded(page)
        assert_clean(recorder)  # a module refused by the policy, or the map refused, would be a console error
        script_src = policies[-1].split("script-src")[1].split(";")[0].split()
        assert script_src[0] == "'self'" and len(script_src) == 2 and script_src[1].startswith("'sha256-")
        statics = [urlsplit(u) for u in recorder.requests if urlsplit(u).path.startswith("/static/")]
        # static/build/'s bundle and chunks where make install made them, else the modules themselves
        modules = [u for u in statics if u.path.startswith(("/static/js/", "/static/build/js/"))]
        assert len(modules) > 5, path  # the page's module graph (bundled: its entry and chunks), not only its entry
        for u in statics:
            if u.path.startswith("/static/vendor/plotly"):  # the plotly package's: not under static/
                assert re.fullmatch(r"v=[0-9a-f]{10}", u.query), u
            else:
                assert u.query == f"v={version(u.path.removeprefix('/static/'))}", u
        # the same page again: every static file is the browser's own (immutable), the server is not asked
        before = static_requests(live)
        assert before >= len(set(statics))  # the first visit's, counted (the entry module once, preloaded)
        page.goto(live.url + path)
        wait_loaded(page)
        assert_clean(recorder)
        assert static_requests(live) == before, path
