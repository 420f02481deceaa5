"""The lab's request and response bodies: the gradient knobs (POST /api/lab/gradients) and the change of one token
(POST /api/models/{id}/diff)."""

from __future__ import annotations

from typing import Annotated, Literal

from annotated_types import Gt
from pydantic import AllowInfNan, BaseModel, BeforeValidator, Field

from app.web.schemas.models import CHECKPOINT_PATTERN, Float, Int, Seed, Strict, Text, _json_number

MAX_RADIUS = 10.0
MAX_FORGET_BIAS = 20.0  # beyond it the forget gate is 0 or 1 to within 2e-9


KnobCell = Literal["rnn", "lstm", "gru", "mingru", "s6"]
MAX_GATE_BIAS = 20.0  # beyond it minGRU's update gate is 0 or 1 to within 2e-9
MIN_STEP, MAX_STEP = 1e-4, 10.0  # S6's Δ: from a state kept for ~10⁴ steps to one forgotten at every step


class GradientsRequest(Strict):
    cell: KnobCell = Field(description="torch.nn's three, or a linear recurrence (minGRU, S6: no W_hh)")
    steps: Int = Field(ge=2, description="T, the sequence's length (at most lab_max_steps)")
    hidden_size: Int = Field(ge=1, description="H (at most lab_max_hidden)")
    radius: Float = Field(
        gt=0.0, le=MAX_RADIUS, allow_inf_nan=False, description="the spectral radius of each recurrent block"
    )
    nonlinearity: Literal["tanh", "relu", "identity"] = Field(
        "tanh", description="the plain RNN's; the LSTM and the GRU ignore it (their candidate is a tanh)"
    )
    forget_bias: Float = Field(
        0.0,
        ge=-MAX_FORGET_BIAS,
        le=MAX_FORGET_BIAS,
        allow_inf_nan=False,
        description="the LSTM's forget gate bias; the other cells ignore it",
    )
    gate_bias: Float = Field(
        0.0,
        ge=-MAX_GATE_BIAS,
        le=MAX_GATE_BIAS,
        allow_inf_nan=False,
        description="minGRU's update gate bias (z_t = σ(W_z x_t + gate_bias); 1 − z_t keeps); the others ignore it",
    )
    step: Float = Field(
        0.01,
        ge=MIN_STEP,
        le=MAX_STEP,
        allow_inf_nan=False,
        description="S6's typical step Δ (its bias is softplus⁻¹(step)); the other cells ignore it",
    )
    clip: Annotated[float, Gt(0.0), AllowInfNan(False), BeforeValidator(_json_number)] | None = Field(
        None,
        description="clipped BPTT: the message ∂L/∂h_t is rescaled to this norm wherever it is longer",
    )
    seed: Seed = Field(0, description="draws the weights, the inputs and the loss's readout")


class GradientsResponse(BaseModel):
    cell: KnobCell
    steps: int
    hidden_size: int
    nonlinearity: Literal["tanh", "relu", "identity"] = Field(
        description="the nonlinearity used: the request's for the plain RNN, tanh for the LSTM and the GRU"
    )
    radius: float
    radius_measured: float = Field(
        description="the largest |eigenvalue| of the recurrent blocks, as set (0: a linear recurrence has none)"
    )
    grad_norms: list[float | None] = Field(
        description="[T] ‖∂L/∂h_t‖, the loss L = w·h_{T−1} (w a random unit vector); null where not finite"
    )
    bound: list[float | None] = Field(
        description="[T] ‖∂L/∂h_{T−1}‖·radius^(T−1−t), the plain RNN's textbook bound (a linear recurrence's: 1, "
        "its factors never exceed 1); null where not finite"
    )
    clipped: list[bool] = Field(description="[T] whether the message was clipped at step t")


class DiffRequest(Strict):
    text: Text = Field(min_length=1, description="the input")
    edited: Text = Field(min_length=1, description="the same input with some tokens changed: as many tokens")
    checkpoint: str | None = Field(None, pattern=CHECKPOINT_PATTERN, description="a saved checkpoint's name")


class DiffResponse(BaseModel):
    tokens: list[str]
    edited_tokens: list[str]
    changed: list[int] = Field(description="steps whose tokens differ")
    directions: list[Literal["forward", "reverse"]] = Field(description="each layer entry's, in torch.nn's order")
    state_change: list[list[float]] = Field(description="[entries][T] ‖h_t − h'_t‖")
    cell_change: list[list[float]] | None = Field(description="[entries][T] ‖c_t − c'_t‖, LSTM; else null")
    prediction_change: list[float] = Field(
        description="[T] ½Σ|p_t − p'_t|, the total variation distance of the two next-token (or class) distributions"
    )
