"""The caption family's wire schema: POST /api/models/{id}/caption's query (its body is the image itself), the
stream's caption mode, and the response (built by app/wire/caption.py, documented here)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import BaseModel, BeforeValidator, Field

from app.engine.caption.trace import MAX_BEAM
from app.web.schemas.models import CHECKPOINT_PATTERN, Precision, Strict, Text, _base64, _json_number


class CaptionRequest(Strict):
    """POST /api/models/{id}/caption's query (its body is the PNG or JPEG itself), and the stream's caption mode."""

    caption: Text | None = Field(
        None, min_length=1, max_length=400, description="the caption the loss is measured against (teacher forcing); "
        "omitted: the model's own best caption. A word outside the model's words is refused by name and position"
    )  # fmt: skip
    # a query's numbers are text ("?beam=4"): read as numbers here, where the stream's JSON must send numbers
    beam: Annotated[int, Ge(1), Le(MAX_BEAM)] = Field(1, description="the beam search's width; 1 is greedy")
    checkpoint: str | None = Field(None, pattern=CHECKPOINT_PATTERN, description="a saved checkpoint's name")
    precision: Annotated[int, Ge(1), Le(9)] | None = Field(
        None, description="significant digits of JSON numbers (binary records are never rounded); omitted: full float32"
    )


class StreamCaptionRequest(CaptionRequest):
    mode: Literal["caption"]
    beam: Annotated[int, Ge(1), Le(MAX_BEAM), BeforeValidator(_json_number)] = Field(
        1, description="the beam search's width; 1 is greedy"
    )
    precision: Precision | None = Field(
        None, description="significant digits of JSON numbers (binary records are never rounded); omitted: full float32"
    )
    image: Annotated[bytes, BeforeValidator(_base64)] = Field(
        description="the PNG or JPEG file, base64", json_schema_extra={"type": "string", "contentEncoding": "base64"}
    )
    encoding: Literal["json", "binary"] = Field("json", description="binary: fixed-size binary records")
    batch: Annotated[int, Ge(1), Le(4096), BeforeValidator(_json_number)] = Field(1)


class CaptionResponse(BaseModel):
    caption: str = Field(description="the beam search's best caption")
    beams: list[dict[str, Any]] = Field(
        description="every final candidate, best first: {caption, score (Σ log p, </s> included), finished}"
    )
    trace: dict[str, Any] = Field(
        description="per word: the decoder's states and gates, the attention over the grid (each row sums to 1), the "
        "top-5 next words, the word's loss, BPTT's gradient norms and the gradient reaching each grid cell of the "
        "encoder's output; the grid's shape (app/wire/caption.py)"
    )
