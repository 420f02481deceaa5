"""POST /api/models/{id}/jacobian: its request and response bodies (the response is built as a dict of arrays and
serialised by orjson; this model documents it in OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Literal

from annotated_types import Ge
from pydantic import BaseModel, BeforeValidator, Field

from app.api.schemas import CHECKPOINT_PATTERN, Strict, Text, _json_number


class JacobianRequest(Strict):
    text: Text = Field(min_length=1, description="the input; each character, word or note is one time step")
    layer: Annotated[int, Ge(0), BeforeValidator(_json_number)] = Field(
        0, description="the layer entry, in torch's order (l0, l0_reverse, l1, …); 0 is the first layer"
    )
    norm: Literal["spectral", "frobenius"] = Field(
        "spectral", description="the matrix norm: the largest singular value, or the root of the sum of squares"
    )
    checkpoint: str | None = Field(None, pattern=CHECKPOINT_PATTERN, description="a saved checkpoint's name")


class JacobianResponse(BaseModel):
    tokens: list[str] = Field(description="the input's steps, as the model's vocabulary reads it")
    layer: int
    norm: Literal["spectral", "frobenius"]
    hidden_size: int
    direction: Literal["forward", "reverse"] = Field(
        description="forward: h_t depends on h_s for s ≤ t; reverse (a bidirectional model's reverse entry, which "
        "reads last step to first): for s ≥ t"
    )
    norms: list[list[float | None]] = Field(
        description="norms[t][s] = ‖∂h_t/∂h_s‖ through the layer's own recurrence (its inputs held; the LSTM's "
        "c_s held), for every s upstream of t (s ≤ t, or s ≥ t for a reverse entry), null elsewhere; the diagonal "
        "is the identity's norm (1, or √H for Frobenius). Below ~1e-308 a norm is 0; an infinite one is null"
    )
