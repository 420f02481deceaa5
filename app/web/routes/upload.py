"""POST /api/models and DELETE /api/models/{id}: models uploaded to a hosted server, off unless an admin token is set.

Who asks is checked before a byte of the body is read: no token configured → 403 (uploads are off), a missing or
wrong bearer token → 401 (compared with hmac.compare_digest, in constant time). The body is limited by
max_upload_bytes (MetricsAndLimits gives this route that limit in place of max_body_bytes; over it: 413). The
files go to a temporary folder outside the models folder, through app.zoo.importer's own checks (a bad file → 422
naming the problem, nothing written), then into the models folder atomically, as `unrolled import` writes them.
Every server reading the same folder serves the model within its next rescan (2 s); this one at once.

Only imported models (task "imported": uploaded, or brought in with `unrolled import`) can be deleted; the zoo's
own are read-only (403).
"""

from __future__ import annotations

import hmac
import json
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.datastructures import FormData, UploadFile

from app.engine.layers import Cell
from app.engine.vocab import Level
from app.web.capacity.budget import ByteBudget
from app.web.config import Settings
from app.web.errors import error_body
from app.web.routes.models import summary
from app.web.schemas.models import ErrorBody, ModelSummary
from app.zoo import importer
from app.zoo.zoo import Zoo, shown_id

router = APIRouter(prefix="/api", tags=["models"])
bearer = HTTPBearer(auto_error=False, description="UNROLLED_ADMIN_TOKEN, as `Authorization: Bearer …`")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

FILES = ("weights", "vocab", "labels")
FIELDS = ("id", "map", "level", "cell", "unk", "features", "mean", "std", "units", "step")
LEVELS: tuple[Level, ...] = ("char", "word")
CELLS: tuple[Cell, ...] = ("rnn", "lstm", "gru")
MAX_FIELD_BYTES = 4096  # id, map, level, cell, unk, a series' features, mean, std, units, step: short text
MAX_MAPS = 16  # --map FROM=TO renames in one upload
# What reading an upload takes at its peak, per byte of its files, taken from the byte budget while it is read
# and checked (in a thread nothing can cancel, outside the compute line): the weights are loaded, converted and
# written (~4 copies); a JSON vocabulary or label list becomes Python strings, a list and the duplicate check's
# dict (~40 bytes per byte of a list of one-letter tokens, 4 bytes each in the file).
WEIGHT_BYTES_FACTOR = 4
JSON_BYTES_FACTOR = 40
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class Refused(Exception):
    """An upload or delete refused with a 4xx status and a message."""

    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.headers = status, error, headers


class Uploaded(BaseModel):
    model: ModelSummary
    matched: list[str]  # what matched what: the importer's own report


def refusal(e: Refused) -> JSONResponse:
    return JSONResponse(error_body(e.error, str(e)), status_code=e.status, headers=e.headers)


def check_admin(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    """401 (with WWW-Authenticate) without a bearer token; 403 if uploads are off; 401 unless the bearer token is
    the admin token."""
    if credentials is None:
        off = "" if settings.uploads_on() else " (this server has none: uploads are off)"
        raise Refused(401, "unauthorized", "uploading and deleting models needs the admin token, sent as "
                      f"'Authorization: Bearer <token>'{off}", {"WWW-Authenticate": "Bearer"})  # fmt: skip
    if not settings.uploads_on() or settings.admin_token is None:
        raise Refused(403, "uploads_off", "uploading and deleting models is off: this server has no admin token "
                      "(UNROLLED_ADMIN_TOKEN)")  # fmt: skip
    want = settings.admin_token.get_secret_value().encode()
    got = credentials.credentials.encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(got, want):
        raise Refused(401, "unauthorized", "uploading and deleting models needs the admin token, sent as "
                      "'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})  # fmt: skip


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in (
        (400, "a malformed multipart body"),
        (401, "a missing or wrong admin token"),
        (403, "uploads are off (no admin token configured), or the model is one of the zoo's own"),
        (413, "a body over max_upload_bytes"),
        (422, "a missing or bad field, or a bad file (the message names the problem); nothing was written"),
    )
}

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["weights", "id"],
                    "additionalProperties": False,
                    "properties": {
                        "weights": {
                            "type": "string",
                            "format": "binary",
                            "description": "safetensors, or a torch state dict (read with weights_only)",
                        },
                        "vocab": {
                            "type": "string",
                            "format": "binary",
                            "description": "JSON: a list of tokens, or a {token: id} map; none for a series model "
                            "(its layers read numbers, its head predicts the next step's)",
                        },
                        "labels": {
                            "type": "string",
                            "format": "binary",
                            "description": "JSON list of class labels (a classifier)",
                        },
                        "id": {"type": "string", "pattern": importer.ID_PATTERN},
                        "map": {
                            "type": "array",
                            "items": {"type": "string"},
                            "maxItems": MAX_MAPS,
                            "description": "FROM=TO key renames, as unrolled import --map",
                        },
                        "level": {"type": "string", "enum": list(LEVELS)},
                        "cell": {"type": "string", "enum": list(CELLS)},
                        "unk": {
                            "type": "string",
                            "description": "which of the vocabulary's tokens stands for text it lacks (default: "
                            "<unk>, <UNK>, [UNK] or <oov> if it has one; with none, text outside it is refused)",
                        },
                        "features": {"type": "string", "description": "a series model: its numbers' names, a,b"},
                        "mean": {"type": "string", "description": "a series model: the data's mean per feature"},
                        "std": {"type": "string", "description": "a series model: the data's std per feature"},
                        "units": {"type": "string", "description": "a series model: what the numbers measure"},
                        "step": {"type": "string", "description": "a series model: what one step is"},
                    },
                }
            }
        },
    }
}


def _text(form: FormData, name: str) -> str | None:
    values = form.getlist(name)
    if not values:
        return None
    if len(values) > 1 or not isinstance(values[0], str):
        raise Refused(422, "invalid", f"{name}: give it once, as a text field")
    return values[0]


def _choice(form: FormData, name: str, allowed: tuple[str, ...]) -> str | None:
    value = _text(form, name)
    if value is not None and value not in allowed:
        raise Refused(422, "invalid", f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _names(form: FormData, name: str) -> tuple[str, ...]:
    text = _text(form, name)
    names = tuple(n.strip() for n in text.split(",")) if text else ()
    if not all(names):
        raise Refused(422, "invalid", f"{name}: names separated by commas, none empty")
    return names


def _numbers(form: FormData, name: str) -> tuple[float, ...]:
    text = _text(form, name)
    try:
        return tuple(float(x) for x in text.split(",")) if text else ()
    except ValueError:
        raise Refused(422, "invalid", f"{name}: {text!r} is not numbers separated by commas") from None


def _file(form: FormData, name: str, required: bool) -> UploadFile | None:
    values = form.getlist(name)
    if not values:
        if required:
            raise Refused(422, "invalid", f"{name}: a file is required (multipart field {name!r})")
        return None
    if len(values) > 1 or not isinstance(values[0], UploadFile):
        raise Refused(422, "invalid", f"{name}: give one file (a multipart part with a filename)")
    return values[0]


async def _save(upload: UploadFile, folder: Path, field: str) -> Path:
    """The uploaded file in the temporary folder, under its own (cleaned) name, for the importer's messages."""
    name = SAFE_NAME.sub("_", Path(upload.filename or field).name).strip("._")[:100] or field
    path = folder / field / name
    path.parent.mkdir()
    with path.open("wb") as out:
        while chunk := await upload.read(1 << 20):
            out.write(chunk)
    return path


def _build_and_write(files: dict[str, Path], model_id: str, options: dict[str, Any], folder: Path) -> importer.Imported:
    """Under the id's claim (the caller holds it): a second upload of the id, here or on another server, is a 409
    however the two interleave."""
    done = importer.build(files["weights"], files.get("vocab"), model_id, labels_path=files.get("labels"), **options)
    if (folder / f"{model_id}.json").exists():
        raise Refused(409, "exists", f"a model {model_id!r} exists already: delete it first, or choose another id")
    importer.write(done, folder, claimed=True)
    return done


def _reading_bytes(files: dict[str, Path]) -> int:
    sizes = {field: path.stat().st_size for field, path in files.items()}
    json_bytes = sizes.get("vocab", 0) + sizes.get("labels", 0)
    return WEIGHT_BYTES_FACTOR * sizes.get("weights", 0) + JSON_BYTES_FACTOR * json_bytes


async def _rescan(request: Request, settings: Settings) -> None:
    """Serve the change here at once; other servers of the folder see it within their next rescan."""
    zoo: Zoo = request.app.state.zoo
    fresh = await anyio.to_thread.run_sync(zoo.rescan, settings.models_dir)
    if fresh is not None:
        request.app.state.zoo = fresh


@router.post(
    "/models",
    status_code=201,
    response_model=Uploaded,
    responses={**ERRORS, 409: {"model": ErrorBody, "description": "a model of this id exists"}},
    openapi_extra=UPLOAD_BODY,
)
async def upload_model(request: Request, credentials: Credentials) -> Any:
    """Upload a model trained elsewhere (needs the admin token): weights, vocabulary and options, as `unrolled
    import` takes them. It is checked, written atomically, and served by every server of the models folder within
    a few seconds."""
    settings: Settings = request.app.state.settings
    try:
        check_admin(settings, credentials)
        async with request.form(
            max_files=len(FILES), max_fields=MAX_MAPS + len(FIELDS), max_part_size=MAX_FIELD_BYTES
        ) as form:
            unknown = sorted(set(form.keys()) - {*FILES, *FIELDS})
            if unknown:
                raise Refused(422, "invalid", f"unknown fields {unknown}: the fields are {', '.join(FILES + FIELDS)}")
            model_id = _text(form, "id")
            if model_id is None:
                raise Refused(422, "invalid", "id: the model's id is required")
            if not importer.valid_id(model_id):
                raise Refused(422, "invalid", f"id {shown_id(model_id)}: use lower-case letters, digits, '.', '_' "
                              "and '-' (up to 64), starting with a letter or digit")  # fmt: skip
            maps = form.getlist("map")
            if not all(isinstance(m, str) for m in maps):
                raise Refused(422, "invalid", "map: text fields FROM=TO, not files")
            if len(maps) > MAX_MAPS:
                raise Refused(422, "invalid", f"map: {len(maps)} renames; the limit is {MAX_MAPS}")
            options: dict[str, Any] = {
                "maps": [m for m in maps if isinstance(m, str)],
                "level": _choice(form, "level", LEVELS),
                "cell": _choice(form, "cell", CELLS),
                "unk": _text(form, "unk"),
                "series": importer.SeriesOptions(
                    features=_names(form, "features"),
                    mean=_numbers(form, "mean"),
                    std=_numbers(form, "std"),
                    units=_text(form, "units") or "",
                    step=_text(form, "step") or "",
                ),
            }
            uploads = {f: _file(form, f, required=f == "weights") for f in FILES}
            budget: ByteBudget = request.app.state.budget
            with tempfile.TemporaryDirectory(prefix="unrolled-upload-") as tmp:
                files = {f: await _save(u, Path(tmp), f) for f, u in uploads.items() if u is not None}
                # held until this server serves the model: a delete (here or on another server) waits for it
                with budget.hold(_reading_bytes(files)), importer.claim(settings.models_dir, model_id):
                    try:
                        done = await anyio.to_thread.run_sync(
                            _build_and_write, files, model_id, options, settings.models_dir
                        )
                    except importer.ImportProblem as e:
                        raise Refused(422, "bad_model", f"{e}; nothing was written") from e
                    await _rescan(request, settings)
                    zoo: Zoo = request.app.state.zoo
                    return Uploaded(model=summary(zoo.get(model_id)), matched=done.matched)
    except importer.Claimed as e:
        return refusal(Refused(409, "busy_id", str(e)))
    except Refused as e:
        return refusal(e)


@router.delete(
    "/models/{model_id}",
    status_code=204,
    response_class=Response,
    responses={
        404: {"model": ErrorBody, "description": "no such model"},
        409: {"model": ErrorBody, "description": "a model trained live in the lab (kept in memory, not deletable)"},
        **ERRORS,
    },
)
async def delete_model(model_id: str, request: Request, credentials: Credentials) -> Response:
    """Delete an uploaded (or imported) model (needs the admin token); the zoo's own models are read-only."""
    settings: Settings = request.app.state.settings
    folder = settings.models_dir
    try:
        check_admin(settings, credentials)
        if model_id in request.app.state.lab_models:  # in memory only: it goes by itself (app.training.live.LabModels)
            raise Refused(409, "lab_model", f"{model_id} was trained live in the lab: it is not in the models folder, "
                          "and goes by itself (lab_model_ttl, lab_models_kept)")  # fmt: skip
        if not importer.valid_id(model_id) or not (folder / f"{model_id}.json").is_file():
            raise Refused(404, "not_found", f"model {shown_id(model_id)} does not exist")
        with importer.claim(folder, model_id):  # not while an upload of the id is being written
            card = folder / f"{model_id}.json"
            try:
                task = json.loads(card.read_text(encoding="utf-8")).get("task")
            except (OSError, ValueError, AttributeError):
                task = None
            if task is None and not card.is_file():
                raise Refused(404, "not_found", f"model {model_id!r} does not exist")  # deleted meanwhile
            if task != "imported":
                raise Refused(403, "read_only", f"{model_id} is one of the zoo's own models: only uploaded "
                              "(imported) models can be deleted")  # fmt: skip
            card.unlink(missing_ok=True)  # the card first: no server then sees a card without its weights
            card.with_suffix(".safetensors").unlink(missing_ok=True)
    except importer.Claimed as e:
        return refusal(Refused(409, "busy_id", str(e)))
    except Refused as e:
        return refusal(e)
    await _rescan(request, settings)
    return Response(status_code=204)
