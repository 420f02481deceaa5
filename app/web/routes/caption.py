"""POST /api/models/{id}/caption: an image (the body itself, PNG or JPEG) → its caption, the beams and the trace, as
POST /transcribe takes a WAV (app/web/routes/trace.py): the family checks and costs it, the route runs it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.web.deps import ZooDep
from app.web.families import web_family
from app.web.routes.trace import ERRORS, JobsDep
from app.web.schemas.caption import CaptionRequest, CaptionResponse
from app.web.schemas.models import ErrorBody

router = APIRouter(prefix="/api", tags=["trace"])

IMAGE_TYPES = ("image/png", "image/jpeg")
IMAGE_BODY = {"schema": {"type": "string", "format": "binary"}}
CAPTION_ERRORS: dict[int | str, dict[str, Any]] = {
    **{status: answer for status, answer in ERRORS.items() if status != 400},  # its body is no JSON
    413: {
        "model": ErrorBody,
        "description": "the body is over max_image_bytes, or the image over 256 pixels a side (from its header: a "
        "decompression bomb is refused undecoded)",
    },
    415: {"model": ErrorBody, "description": "the body is not sent as a PNG or JPEG (Content-Type image/png or jpeg)"},
    422: {
        "model": ErrorBody,
        "description": "the body is not a PNG or JPEG this server reads (not an image, truncated, 0 × 0, a colour "
        "mode such as CMYK), or the caption has a word the model does not write (each named), or the query is "
        "malformed",
    },
}


@router.post(
    "/models/{model_id}/caption",
    response_model=CaptionResponse,
    responses=CAPTION_ERRORS,
    openapi_extra={"requestBody": {"required": True, "content": dict.fromkeys(IMAGE_TYPES, IMAGE_BODY)}},
)
async def caption_image(
    model_id: str, query: Annotated[CaptionRequest, Query()], zoo: ZooDep, jobs: JobsDep
) -> Response:
    """Caption an image (the body itself, Content-Type image/png or image/jpeg: at most 256 × 256 pixels, read as
    64 × 64 RGB): its caption, the beam search's candidates, and the trace of every word (the decoder's states and
    gates, the attention over the encoder's grid, the top-5 next words, each word's loss, BPTT's gradient norms and
    the gradient reaching each grid cell), scored against `caption` (teacher forcing) or the model's own."""
    jobs.check_media(IMAGE_TYPES, f"a PNG or JPEG sent as {' or '.join(IMAGE_TYPES)}; this has")
    loaded = zoo.get(model_id)
    family = web_family(loaded)
    image = await jobs.body()
    return await jobs.run_whole(family.caption_job(loaded, image, query, jobs.settings))
