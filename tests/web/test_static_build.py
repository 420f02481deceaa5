"""The build of the static files (tools/bundle.mjs → static/build/, app/web/middleware/assets.py): served in place of
the modules only while it was made from them; Node.js and Python agree on what "made from them" means; Plotly's
partial bundle draws every trace type the pages ask for."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import plotly
import pytest

from app.web.config import ROOT
from app.web.middleware.assets import Assets, sources_hash

STATIC = ROOT / "static"


def write(folder: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)


SOURCES = {"js/pages/a.js": 'import { b } from "../b.js"; b();', "js/b.js": "export const b = () => 1;"}
BUILT = {
    "build/js/pages/a.js": 'import{b}from"../chunks/c-1.js";b();',
    "build/js/chunks/c-1.js": "export const b=()=>1;",
}


def manifest(sources: dict[str, str]) -> str:
    imports = {"build/js/pages/a.js": ["build/js/chunks/c-1.js"]}
    return json.dumps({"sources": sources_hash({p: t.encode() for p, t in sources.items()}), "imports": imports})


def test_a_build_made_from_the_modules_on_disk_is_what_pages_load(tmp_path: Path) -> None:
    write(tmp_path, {**SOURCES, **BUILT, "build/manifest.json": manifest(SOURCES)})
    assets = Assets.load(tmp_path)
    entry = assets.url("js/pages/a.js")
    assert entry.startswith("/static/build/js/pages/a.js?v=")
    chunk = f"/static/build/js/chunks/c-1.js?v={assets.files['build/js/chunks/c-1.js'].version}"
    assert assets.preloads("js/pages/a.js") == [entry, chunk]
    # a chunk's relative import resolves to its plain URL: the import map sends it to the hashed one
    assert json.loads(assets.import_map)["imports"]["/static/build/js/chunks/c-1.js"] == chunk
    assert assets.url("js/b.js").startswith("/static/js/b.js?v=")  # a module the build does not have
    # static_build=false (the classroom bench's baseline): the sources, as without a build
    assert Assets.load(tmp_path, use_build=False).url("js/pages/a.js").startswith("/static/js/pages/a.js?v=")


def test_a_build_of_other_modules_is_not_served(tmp_path: Path) -> None:
    """A module edited since the build: the build would run the old code, so the sources are served instead."""
    write(tmp_path, {**SOURCES, **BUILT, "build/manifest.json": manifest(SOURCES)})
    write(tmp_path, {"js/b.js": "export const b = () => 2;"})
    assets = Assets.load(tmp_path)
    assert assets.build is None
    assert not [p for p in assets.files if p.startswith("build/")]
    assert assets.url("js/pages/a.js").startswith("/static/js/pages/a.js?v=")
    assert assets.preloads("js/pages/a.js") == [assets.url("js/pages/a.js")]


def test_no_build_serves_the_modules_as_before(tmp_path: Path) -> None:
    write(tmp_path, SOURCES)
    assets = Assets.load(tmp_path)
    assert assets.build is None and assets.url("js/pages/a.js").startswith("/static/js/pages/a.js?v=")


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js builds the bundles (make install)")
def test_node_and_python_hash_the_modules_alike() -> None:
    printed = subprocess.run(["node", "tools/sources-hash.mjs"], cwd=ROOT, capture_output=True, text=True, check=True)
    on_disk = {p.relative_to(STATIC).as_posix(): p.read_bytes() for p in STATIC.rglob("*.js")}
    assert printed.stdout.strip() == sources_hash(on_disk)


def trace_types(bundle: str) -> set[str]:
    return set(re.findall(r'moduleType:"trace",name:"(\w+)"', bundle))


def test_plotlys_partial_bundle_draws_every_trace_type_the_pages_ask_for() -> None:
    partial = STATIC / "build" / "vendor" / "plotly.min.js"
    if not partial.is_file():
        pytest.skip("static/build is made by make install (npm ci, node tools/bundle.mjs)")
    full = trace_types((Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text())
    asked = {
        name
        for module in (STATIC / "js").rglob("*.js")
        for name in re.findall(r'\btype: "(\w+)"', module.read_text())
        if name in full  # "bar", "heatmap", "scatter": not an axis's "log" or a frame's "step"
    }
    assert {"scatter", "bar", "heatmap"} <= asked
    assert asked <= trace_types(partial.read_text())
    assert len(trace_types(partial.read_text())) < len(full) / 3


def test_every_page_of_the_templates_loads_its_bundle() -> None:
    """Each page's module (a template's `entry`, base.html's chrome.js) is served from the build, however a page
    names it: a page added without being bundled would load its 40 modules one by one beside the others' bundles."""
    assets = Assets.load(STATIC)
    if assets.build is None:
        pytest.skip("static/build is made by make install (npm ci, node tools/bundle.mjs), from these modules")
    named = {  # {% set entry = "js/…" %} and asset('js/…'), as tools/bundle.mjs finds its entries
        module
        for template in (ROOT / "templates").glob("*.html")
        for module in re.findall(r"[\"'](js/[\w/.-]+\.js)[\"']", template.read_text())
    }
    assert {"js/chrome.js", "js/pages/tour.js", "js/pages/caption.js", "js/pages/model.js"} <= named
    for module in named:
        assert assets.url(module).startswith(f"/static/build/{module}?v="), module
        assert len(assets.preloads(module)) > 1 or module == "js/pages/upload.js", module  # its entry and chunks
