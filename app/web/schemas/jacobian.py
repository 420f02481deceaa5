"""POST /api/models/{id}/jacobian: its request and response bodies (the response is built as a dict of arrays and
serialised by orjson; this model documents it in OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from app.web.schemas.models import (
    CHECKPOINT_PATTERN,
    Strict,
    Text,
    Values,
    _json_number,
    _no_nulls,
    _one_input,
    _one_of,
)


class JacobianRequest(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_of("text"))

    text: Text | SkipJsonSchema[None] = Field(
        None, min_length=1, description="the input; each character, word or note is one time step"
    )
    values: Values | SkipJsonSchema[None] = None
    layer: Annotated[int, Ge(0), BeforeValidator(_json_number)] = Field(
        0, description="the layer entry, in torch's order (l0, l0_reverse, l1, …); 0 is the first layer"
    )
    norm: Literal["spectral", "frobenius"] = Field(
        "spectral", description="the matrix norm: the largest singular value, or the root of the sum of squares"
    )
    checkpoint: str | None = Field(None, pattern=CHECKPOINT_PATTERN, description="a saved checkpoint's name")

    @model_validator(mode="before")
    @classmethod
    def _present(cls, data: Any) -> Any:
        return _no_nulls(data, "text", "values")

    @model_validator(mode="after")
    def _one_input(self) -> JacobianRequest:
        _one_input(self.text, self.values, "text")
        return self


class JacobianResponse(BaseModel):
    tokens: list[str] = Field(
        description="the input's steps, as the model's vocabulary reads them (a series model's: each step's numbers "
        'as text, e.g. "3.5" or "3.5, 8")'
    )
    layer: int
    norm: Literal["spectral", "frobenius"]
    hidden_size: int
    direction: Literal["forward", "reverse"] = Field(
        description="forward: h_t depends on h_s for s ≤ t; reverse (a bidirectional model's reverse entry, which "
        "reads last step to first): for s ≥ t"
    )
    norms: list[list[float | None]] = Field(
        description="norms[t][s] = ‖∂h_t/∂h_s‖ through the layer's own recurrence (its inputs held; the LSTM's: "
        "‖∂h_t/∂(h_s, c_s)‖, of its whole state at s), for every s upstream of t (s ≤ t, or s ≥ t for a reverse "
        "entry), null elsewhere; the diagonal is the identity's norm (1, or √H for Frobenius). Below ~1e-308 a norm "
        "is 0; an infinite one is null"
    )
