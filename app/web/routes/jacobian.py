"""POST /api/models/{id}/jacobian: every step's influence on every later step, ‖∂h_t/∂h_s‖ (app.engine.lab.jacobian)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.engine.modern.layer import state_numbers
from app.web.capacity import cost
from app.web.deps import ZooDep
from app.web.errors import LimitExceeded
from app.web.families import web_family
from app.web.families.base import Job
from app.web.routes.trace import ERRORS, JobsDep, share_key
from app.web.schemas.jacobian import JacobianRequest, JacobianResponse
from app.wire.frames import dumps

router = APIRouter(prefix="/api", tags=["lab"])


# A linear recurrence's triangle, per number of its state a step (tests/web/test_trace_estimate.py measures it)
DIAGONAL_BYTES = 64
FULL_HIDDEN = 128  # models up to this hidden size get all of jacobian_max_steps


def step_limit(max_steps: int, hidden: int) -> int:
    """The most steps a model of this hidden size may be given: the work grows as T²H³ (T²/2 products of H × H),
    so beyond FULL_HIDDEN the limit shrinks as (FULL_HIDDEN/H)^1.5, which keeps it at jacobian_max_steps' work at
    H = FULL_HIDDEN (an imported model of hidden size 1024 would otherwise take an hour of a compute slot)."""
    if hidden <= FULL_HIDDEN:
        return max_steps
    return max(2, int(max_steps * (FULL_HIDDEN / hidden) ** 1.5))


def over_limit(steps: int, max_steps: int, hidden: int) -> None:
    limit = step_limit(max_steps, hidden)
    if steps <= limit:
        return
    if limit == max_steps:
        raise LimitExceeded(f"the input reads as {steps} steps; the limit is {limit} steps (jacobian_max_steps)")
    raise LimitExceeded(
        f"the input reads as {steps} steps; for a model of hidden size {hidden} the limit is {limit} steps "
        f"(jacobian_max_steps = {max_steps}, scaled by ({FULL_HIDDEN}/{hidden})^1.5: the work grows as T²H³)"
    )


def working_bytes(steps: int, hidden: int, cell: str) -> int:
    """What computing a triangle takes at its peak: every step's Jacobian in float64 and the temporaries that
    build them, the (T, T) norms, and the body, ~25 characters a norm (the products themselves take one H × H
    matrix or two per thread). Measured at T = 300, H = 128 (peak resident rise): the RNN 40 MB (1 T·H² float64),
    the GRU 119 MB (3), the LSTM 155 MB (4); each is given one T·H² more. A linear recurrence's Jacobians are
    diagonal: no T·H² matrices, but its forward's states and log-products over its whole state (S6: D × N numbers
    a step), a row (T × its state) at a time: ~6 float64 a number of it a step (S6 at T = 300, H = 64: 16 MB)."""
    matrices = steps * hidden * hidden * 8
    diagonal = steps * state_numbers(cell, hidden) * DIAGONAL_BYTES
    return matrices * {"rnn": 2, "gru": 4, "lstm": 5}.get(cell, 0) + diagonal + 33 * steps * steps + (1 << 20)


@router.post("/models/{model_id}/jacobian", response_model=JacobianResponse, responses=ERRORS)
async def jacobian(
    model_id: str,
    req: JacobianRequest,
    zoo: ZooDep,
    jobs: JobsDep,
) -> Response:
    """‖∂h_t/∂h_s‖ for every pair of steps of one layer entry, through that layer's own recurrence (its inputs
    held; for the LSTM, of its whole state at s: ‖∂h_t/∂(h_s, c_s)‖), exact in float64: a triangle, null where s is
    not upstream of t. Text models take `text`, series models `values`; translation models are a 409; at most
    jacobian_max_steps steps."""
    loaded = zoo.get(model_id)
    settings = jobs.settings
    hidden = loaded.card.hidden_size
    read = web_family(loaded).jacobian_input(
        loaded, req, settings, lambda steps: over_limit(steps, settings.jacobian_max_steps, hidden)
    )
    tokens, entries = read.tokens, read.entries
    steps = len(tokens)
    if req.layer >= entries:
        raise LimitExceeded(
            f"layer is {req.layer}; this model has {entries} layer entr{'y' if entries == 1 else 'ies'} "
            f"(0 to {entries - 1}, torch's order: l0{', l0_reverse' if loaded.card.directions == 2 else ''}, …)"
        )

    def work() -> bytes:
        result = read.norms()
        return dumps(
            {
                "tokens": tokens,
                "layer": req.layer,
                "norm": req.norm,
                "hidden_size": result.hidden_size,
                "direction": result.direction,
                "norms": result.norms.numpy(),  # orjson writes NaN (s not upstream of t) and ±inf as null
            }
        )

    # Its cost grows as T²H³ (T²/2 products of H × H), not as its steps
    estimate = working_bytes(steps, loaded.card.hidden_size, loaded.card.cell)
    return await jobs.run(Job(work, cost.jacobian_seconds(loaded, steps), estimate), share_key("jacobian", loaded, req))
