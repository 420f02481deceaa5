"""The HTML pages (Jinja2 templates).

Pages carry no data beyond what a template needs to lay itself out: the browser fetches traces through
static/js/api.js. No inline scripts but the import map (allowed by its hash): page parameters travel in
data- attributes.
"""

from __future__ import annotations

import functools
import gzip
import weakref
from typing import Any
from urllib.parse import quote, urlencode

import brotli
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Undefined
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

from app.engine.card import LoadedModel, ModelCard
from app.engine.layers import CELLS, GRADIENT_NOTES, RNN_CLASSES
from app.engine.modern.layer import LAYERS
from app.training.tasks import TASKS, KeyMetric
from app.training.tasks.base import percent
from app.web.config import ROOT
from app.web.deps import SettingsDep, ZooDep
from app.web.families import web_family
from app.web.middleware.assets import Assets, accepted
from app.web.middleware.security import content_security_policy, policy_host
from app.zoo.zoo import UnknownModel, Zoo

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=ROOT / "templates")
templates.env.globals["GRADIENT_NOTES"] = GRADIENT_NOTES  # each cell's sentence under ‖∂L/∂h_t‖
# the cells whose layers have a hidden attention (S6's): their pages show it (the layer's own description says so)
templates.env.globals["ATTENDING_CELLS"] = [cell for cell, layer in LAYERS.items() if layer.attends]

CELL_ORDER = {cell: n for n, cell in enumerate(CELLS)}


def key_metric(card: ModelCard) -> KeyMetric | None:
    """The number a card shows first: the task says which (app/tasks); a model of no known task shows its
    accuracy, or else its first number."""
    task = TASKS.get(card.task)
    if task is not None:
        return task.key_metric(card.metrics)
    numbers = {k: v for k, v in card.metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    if "accuracy" in numbers:
        return KeyMetric("accuracy", percent(numbers["accuracy"]))
    name, value = next(iter(numbers.items()), (None, None))
    return None if name is None or value is None else KeyMetric(name.replace("_", " "), f"{value:.3g}")


def task_title(task: str) -> str:
    known = TASKS.get(task)
    return known.title if known is not None else task.replace("-", " ")


def tasks_of(zoo: Zoo) -> dict[str, list[LoadedModel]]:
    """Task → its models, RNN before LSTM before GRU (before minGRU, minLSTM and S6)."""
    out: dict[str, list[LoadedModel]] = {}
    for m in zoo:
        out.setdefault(m.card.task, []).append(m)
    for models in out.values():
        models.sort(key=lambda m: (CELL_ORDER.get(m.card.cell, 9), m.card.id))
    order = list(TASKS)
    return dict(sorted(out.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))


def comparable(models: list[LoadedModel]) -> list[LoadedModel]:
    """One model per cell type (the first of each), for the compare page, of the models their family compares cell
    by cell (a translation model's page switches attention instead; series models are compared on their own page
    by their held-out error)."""
    seen: dict[str, LoadedModel] = {}
    for m in models:
        if web_family(m).compared_by_cell(m):
            seen.setdefault(m.card.cell, m)
    return list(seen.values())


def page_card(m: LoadedModel, fields: dict[str, Any]) -> dict[str, Any]:
    """What the pages read of a card, as GET /api/models/{id} gives it. A page about a melody or series model
    carries these cards (data-cards) so that it needs no request for them (api.js getModel reads them first);
    `fields`: its family's (embed_size, vocab, labels, series)."""
    c = m.card
    return {
        "id": c.id, "task": c.task, "cell": c.cell, "kind": c.kind, "hidden_size": c.hidden_size,
        "num_layers": c.num_layers, "embed_size": fields["embed_size"], "description": c.description,
        "vocab": fields["vocab"], "vocab_level": m.vocab.level,
        "unk": m.vocab.unk,
        "labels": fields["labels"], "target": None, "gates": list(c.gate_names), "examples": c.examples,
        "checkpoints": [{"name": k.name, "step": k.step} for k in c.checkpoints], "series": fields["series"],
        "metrics": {k: v for k, v in c.metrics.items() if isinstance(v, int | float | str)},
    }  # fmt: skip


def page_cards(zoo: Zoo) -> dict[str, dict[str, Any]]:
    cards = {}
    for m in zoo:
        fields = web_family(m).page_card(m)
        if fields is not None:
            cards[m.card.id] = page_card(m, fields)
    return cards


# The zoo's page cards as the pages carry them (data-cards), written once per zoo (a rescan or an upload makes
# another): building and writing them was 5 of the 5.4 ms of CPU a tour page took, for each student of a room.
_CARDS_JSON: weakref.WeakKeyDictionary[Zoo, Markup] = weakref.WeakKeyDictionary()


def page_cards_json(zoo: Zoo) -> Markup:
    """page_cards(zoo) as JSON safe inside an HTML attribute (Jinja's tojson)."""
    written = _CARDS_JSON.get(zoo)
    if written is None:
        written = _CARDS_JSON[zoo] = htmlsafe_json_dumps(page_cards(zoo))
    return written


@functools.lru_cache(maxsize=64)
def page_copies(body: bytes) -> dict[str, bytes]:
    """A page's br and gzip copies, where smaller: made once per distinct page (the tour's scene for a room of 200
    is one page; 90 kB of HTML, 16 kB in br), kept for the last 64."""
    copies = {"br": brotli.compress(body, quality=5), "gzip": gzip.compress(body, compresslevel=6, mtime=0)}
    return {name: copy for name, copy in copies.items() if len(copy) < len(body)}


def compressed(request: Request, response: HTMLResponse) -> HTMLResponse:
    """The page in the encoding the client accepts (br before gzip), from page_copies."""
    response.headers.add_vary_header("Accept-Encoding")
    body = bytes(response.body)
    for name in accepted(request.headers.get("accept-encoding", "").encode("latin-1")):
        copy = page_copies(body).get(name)
        if copy is not None:
            response.body = copy
            response.headers["content-encoding"] = name
            response.headers["content-length"] = str(len(copy))
            break
    return response


def link(path: str, **query: Any) -> str:
    """A relative link with a query string; parameters that are None are left out."""
    params = {k: v for k, v in query.items() if v is not None and not isinstance(v, Undefined)}
    return f"{path}?{urlencode(params, quote_via=quote)}" if params else path


# Pages that may show a melody or series model: they carry those models' cards (see page_card).
CARD_PAGES = {"melody.html", "series.html", "compare.html", "generate.html", "tour.html"}


def page(request: Request, name: str, status_code: int = 200, import_map: bool = True, **context: Any) -> HTMLResponse:
    """A page; `import_map`: whether it carries the import map (base.html's pages do), which sends its ES modules
    to their content-hashed URLs (app.web.middleware.assets). `asset(path)` gives a file's hashed URL."""
    assets: Assets = request.app.state.assets
    # uploads_on: whether the upload form and the Delete button are offered (an admin token is configured)
    # preloads(entry): the page's module and, bundled, its chunks
    context = {"task_title": task_title, "link": link, "uploads_on": request.app.state.settings.uploads_on(),
               "asset": assets.url, "preloads": assets.preloads, "import_map": assets.import_map,
               **context}  # fmt: skip
    if name in CARD_PAGES:
        context["cards"] = page_cards_json(request.app.state.zoo)
    headers = {}
    if import_map:  # its one inline script, allowed by its hash; the other security headers are the middleware's
        policy = content_security_policy(policy_host(request.scope), (assets.import_map_hash,))
        headers["Content-Security-Policy"] = policy
    response = templates.TemplateResponse(request, name, context, status_code=status_code, headers=headers)
    return compressed(request, response)


def not_found(request: Request, message: str) -> HTMLResponse:
    return page(request, "not_found.html", status_code=404, message=message)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, zoo: ZooDep) -> HTMLResponse:
    """The zoo: models as cards grouped by task, each example one click away."""
    groups = [
        {"task": task, "title": task_title(task), "models": models, "compare": len(comparable(models)) > 1}
        for task, models in tasks_of(zoo).items()
    ]
    return page(request, "home.html", groups=groups, key_metric=key_metric, skipped=zoo.skipped,
                home_card=lambda m: web_family(m).home_card(m))  # fmt: skip


def model_page(request: Request, zoo: Zoo, model_id: str, view: str) -> HTMLResponse:
    """A view of one model ("model", "generate", "learning"): its family says which page shows it, or why none."""
    try:
        m = zoo.get(model_id)
    except UnknownModel as e:
        return not_found(request, str(e))
    task_models = tasks_of(zoo)[m.card.task]
    chosen = web_family(m).page(zoo, m, view, task_models, comparable(task_models))
    if isinstance(chosen, str):
        return not_found(request, chosen)
    return page(request, chosen.template, m=m, **chosen.context)


@router.get("/models/{model_id}", response_class=HTMLResponse)
def model_view(request: Request, model_id: str, zoo: ZooDep) -> HTMLResponse:
    """One model, unrolled: the network, hidden state, gates, gradients, text and trajectory; a translation model,
    its encoder and decoder unrolled with the attention between them."""
    return model_page(request, zoo, model_id, "model")


@router.get("/models/{model_id}/generate", response_class=HTMLResponse)
def generate_view(request: Request, model_id: str, zoo: ZooDep) -> HTMLResponse:
    """Type a prompt and watch a next-token model write, its states streaming in."""
    return model_page(request, zoo, model_id, "generate")


@router.get("/models/{model_id}/learning", response_class=HTMLResponse)
def learning_view(request: Request, model_id: str, zoo: ZooDep) -> HTMLResponse:
    """The same input's internals at each saved checkpoint of training."""
    return model_page(request, zoo, model_id, "learning")


@router.get("/upload", response_class=HTMLResponse)
def upload_view(request: Request) -> HTMLResponse:
    """Upload a model trained elsewhere (POST /api/models, for whoever holds the admin token)."""
    return page(request, "upload.html", max_upload_bytes=request.app.state.settings.max_upload_bytes)


@router.get("/compare", response_class=HTMLResponse)
def compare_view(request: Request, zoo: ZooDep, task: str | None = None) -> HTMLResponse:
    """The RNN, LSTM and GRU of one task on the same input, one time cursor, one log plot of gradients."""
    groups = tasks_of(zoo)
    choices = [t for t, models in groups.items() if len(comparable(models)) > 1]
    if task is None and choices:
        task = choices[0]
    if task is None or task not in groups or not comparable(groups[task]):
        known = ", ".join(choices) or "none"
        for m in groups.get(task or "", []):  # a task its family does not compare cell by cell says why
            why = web_family(m).not_compared(task or "", groups[task or ""][0].card.id, known)
            if why is not None:
                return not_found(request, why)
        return not_found(request, f"no task {task!r} to compare; tasks with several cells: {known}")
    models = comparable(groups[task])
    labels = web_family(models[0]).labels(models[0])  # the input's label choice, if the models classify
    return page(request, "compare.html", task=task, models=models, choices=choices, labels=labels)


@router.get("/lab", response_class=HTMLResponse)
def lab_view(request: Request, zoo: ZooDep, settings: SettingsDep) -> HTMLResponse:
    """The lab: the knobs of the vanishing gradient, live training, every step's influence, one token changed.
    Its lower sections read tasks with an RNN, an LSTM and a GRU of text, and the task's linear recurrences beside
    them (memory's minGRU, minLSTM and S6): task → [{id, cell}], one model per cell, in CELLS' order."""
    tasks = {t: [{"id": m.card.id, "cell": m.card.cell} for m in comparable(ms)] for t, ms in tasks_of(zoo).items()
             if all(web_family(m).in_lab(m) for m in ms)}  # fmt: skip
    limits = {"steps": settings.lab_max_steps, "hidden": settings.lab_max_hidden, "gap": settings.lab_max_gap,
              "seconds": settings.lab_max_seconds}  # fmt: skip
    tasks = {t: models for t, models in tasks.items() if set(RNN_CLASSES) <= {m["cell"] for m in models}}
    # the lower sections' lessons that need a long input (the memory task's gap), said beside the input
    lessons = {t: {"min_gap": task.lesson_gap, "what": task.lesson_gap_what}
               for t in tasks if (task := TASKS.get(t)) is not None and task.lesson_gap is not None}  # fmt: skip
    return page(request, "lab.html", tasks=tasks, limits=limits, lessons=lessons)


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
    """The API's documentation (Swagger UI from the installed fastapi-offline package: offline, no CDN)."""
    return page(request, "docs.html", import_map=False)
