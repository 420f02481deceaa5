"""Talk mode pages: /tour (a tour's scenes, one at a time) and /tours (every tour, and the files skipped)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.tour.tours import DEFAULT_TOUR, LoadedTour, Scene, current_tours, scene_models
from app.web.deps import SettingsDep, ZooDep
from app.web.routes.pages import not_found, page
from app.zoo.zoo import Zoo

router = APIRouter(include_in_schema=False)


def scene_payload(scene: Scene, zoo: Zoo) -> dict[str, Any]:
    """A scene as the page plays it: its models resolved against the zoo, its panels, and any problem."""
    models, problems = scene_models(scene, zoo)
    out = scene.model_dump(mode="json", exclude_none=True, exclude={"input", "model", "models", "panels"})
    inputs = scene.input if isinstance(scene.input, list) else ([scene.input] if scene.input else [])
    out.update(models=models, inputs=inputs, panels=scene.shown_panels(), problems=problems)
    return out


def tour_payload(loaded: LoadedTour, zoo: Zoo) -> dict[str, Any]:
    t = loaded.tour
    return {
        "name": loaded.name,
        "default": loaded.name == DEFAULT_TOUR,
        "title": t.title,
        "scenes": [scene_payload(s, zoo) for s in t.scenes],
    }


SCENE_RE = re.compile(r"[0-9]{1,6}")


@router.get("/tour", response_class=HTMLResponse)
def tour_view(
    request: Request, zoo: ZooDep, settings: SettingsDep, name: str | None = None, scene: str | None = None
) -> HTMLResponse:
    """Talk mode: one scene of a tour at a time, each a live view with a caption; arrows or a clicker move on."""
    tours = current_tours(settings.tour_dir)
    loaded = tours.tours.get(name) if name else tours.default()
    if loaded is None:
        known = ", ".join(tours.tours) or "none"
        return not_found(request, f"no tour {name!r}; the tours are: {known}" if name else "no tour is installed")
    payload = tour_payload(loaded, zoo)
    n = len(payload["scenes"])
    # ASCII digits only ("²".isdigit() is true, and int() of 4,000 digits raises): anything else is scene 1
    index = int(scene) if scene and SCENE_RE.fullmatch(scene) else 1
    index = min(max(1, index), n)
    current = payload["scenes"][index - 1]
    return page(request, "tour.html", tour=payload, index=index, current=current, others=list(tours.tours.values()))


@router.get("/tours", response_class=HTMLResponse)
def tours_view(request: Request, zoo: ZooDep, settings: SettingsDep) -> HTMLResponse:
    """Every tour installed, with its scenes, and the tour files that were skipped and why."""
    tours = current_tours(settings.tour_dir)
    listed = [
        {
            "name": t.name,
            "title": t.tour.title,
            "description": t.tour.description,
            "path": t.path.name,
            "scenes": [(s.title, scene_models(s, zoo)[1]) for s in t.tour.scenes],
        }
        for t in tours.tours.values()
    ]
    return page(request, "tours.html", tours=listed, skipped=tours.skipped, tour_dir=settings.tour_dir)
