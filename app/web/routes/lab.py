"""The lab's computations over REST: POST /api/lab/gradients (the knobs of the vanishing gradient) and
POST /api/models/{id}/diff (change one token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.requests import Request

from app.engine.family import family_of
from app.engine.lab import knobs
from app.engine.lab.diff import diff_ids
from app.engine.modern.layer import state_numbers
from app.engine.token.model import SeqModel
from app.web.capacity import cost
from app.web.capacity.shared import Shared
from app.web.deps import ComputeDep, SettingsDep, ZooDep, work_of
from app.web.errors import LimitExceeded
from app.web.families.base import Job
from app.web.routes.trace import ERRORS, JobsDep, share_key
from app.web.schemas.lab import DiffRequest, DiffResponse, GradientsRequest, GradientsResponse
from app.web.service import check_chars, readable, text_of
from app.wire.frames import dumps

router = APIRouter(prefix="/api", tags=["lab"])


def _over(what: str, value: int, limit: int, setting: str) -> None:
    if value > limit:
        raise LimitExceeded(f"{what} is {value}; the limit is {limit} ({setting})")


@router.post("/lab/gradients", response_model=GradientsResponse, responses=ERRORS)
async def gradients(req: GradientsRequest, request: Request, compute: ComputeDep, settings: SettingsDep) -> Response:
    """‖∂L/∂h_t‖ at every step of one recurrent layer set by the knobs (spectral radius, nonlinearity, forget bias,
    clipping; minGRU's gate bias, S6's step Δ), the loss at the last step, with the textbook bound
    (app/engine/lab/knobs.py says how)."""
    _over("steps", req.steps, settings.lab_max_steps, "lab_max_steps")
    _over("hidden_size", req.hidden_size, settings.lab_max_hidden, "lab_max_hidden")
    nonlinearity: knobs.Nonlinearity = req.nonlinearity if req.cell == "rnn" else "tanh"

    def work() -> bytes:
        curves = knobs.gradients(
            req.cell, req.steps, req.hidden_size, req.radius, nonlinearity, req.forget_bias, req.clip, req.seed,
            req.gate_bias, req.step,
        )  # fmt: skip
        return dumps(
            {
                "cell": req.cell,
                "steps": req.steps,
                "hidden_size": req.hidden_size,
                "nonlinearity": nonlinearity,
                "radius": req.radius,
                "radius_measured": curves.radius_measured,
                "grad_norms": curves.grad_norms.tolist(),  # orjson writes inf and NaN as null
                "bound": curves.bound.tolist(),
                "clipped": curves.clipped.tolist(),
            }
        )

    admitted = work_of(request, cost.knobs_seconds(req.cell, req.steps, req.hidden_size))

    async def computed() -> bytes:
        return await compute.run(admitted, work)

    # The knobs and the seed decide the curves (no model, nothing random beyond the seed): a room that opens the
    # knobs scene asks one computation, not one a student (app.web.capacity.shared).
    shared: Shared = request.app.state.shared
    body = await shared.get(("lab/gradients", req.model_dump_json()), computed, len)
    return Response(body, media_type="application/json")


@router.post("/models/{model_id}/diff", response_model=DiffResponse, responses=ERRORS)
async def diff(
    model_id: str,
    req: DiffRequest,
    zoo: ZooDep,
    jobs: JobsDep,
) -> Response:
    """Read `text` and `edited` (as many tokens, some changed): how far the change travels, as ‖h_t − h'_t‖ per
    layer entry (and ‖c_t − c'_t‖ for the LSTM) and the total variation distance of the two predictions per step."""
    loaded = zoo.get(model_id)
    settings = jobs.settings
    family = family_of(loaded.card.kind)
    family.lab_model(loaded, None)  # first: a model of another family is a 409 whatever its input
    encoded = []
    for what, text in (("text", req.text), ("edited", req.edited)):
        check_chars(what, text_of(loaded, text), settings.max_steps, "max_steps")
        # tokenised as the trace tokenises: a melody's unknown note is the trace's 422
        melody = "melody" if what == "text" else "edited melody"
        encoded.append(readable(loaded, loaded.vocab.encode(text, settings.max_steps, what), melody))
    model = family.lab_model(loaded, req.checkpoint)
    first, edited = encoded
    steps = len(first.ids)

    def work() -> bytes:
        d = diff_ids(model, first.ids, edited.ids)
        body: dict[str, Any] = {
            "tokens": first.tokens,
            "edited_tokens": edited.tokens,
            "changed": d.changed,
            "directions": d.directions,
            "state_change": d.state_change.tolist(),
            "cell_change": None if d.cell_change is None else d.cell_change.tolist(),
            "prediction_change": d.prediction_change.tolist(),
        }
        return dumps(body)

    return await jobs.run(
        Job(work, cost.diff_seconds(loaded, steps), diff_working_bytes(model, steps)), share_key("diff", loaded, req)
    )


# A modern cell's forward over both inputs, per number of its state a step: each layer's float32 states and
# coefficients, held for both inputs (measured by tests/web/test_trace_estimate.py: S6, H = 64, T = 2,000: 85 MB for
# one layer, 102 for two, ~41 and ~8 bytes a number a step).
DIFF_MODERN_BYTES = 40  # once
DIFF_MODERN_HELD_BYTES = 8  # each layer


def diff_working_bytes(model: SeqModel, steps: int) -> int:
    """What computing a diff takes at its peak: the float64 copy of the model, both inputs' states and gates
    (float64), the body (~22 bytes a value), and a modern cell's states over its whole state (S6: D × N a step)."""
    cfg = model.config
    entries = cfg.num_layers * cfg.directions
    params = sum(p.numel() for p in model.parameters())
    modern = (
        steps * state_numbers(cfg.cell, cfg.hidden_size) * (DIFF_MODERN_BYTES + DIFF_MODERN_HELD_BYTES * cfg.num_layers)
    )
    return 8 * params + 2 * 8 * steps * entries * cfg.hidden_size * 6 + 22 * steps * (2 * entries + 1) + 4096 + modern
