"""The caption family on the web (kind "caption"): an image read, limited and costed before it is captioned
(POST /api/models/{id}/caption's body, the stream's "caption" mode), its card as the API and the zoo's page show
it, its page (templates/caption.html, static/js/pages/caption.js) and the scene rules that page draws by (`router`:
GET /api/caption-scenes). Every request of the other families' shapes (text, numbers or audio in) is refused, saying
what the model does. Its wire layout is app/wire/caption.py's."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from fastapi import APIRouter
from PIL import Image, ImageDraw

from app.engine.caption.card import caption_card
from app.engine.caption.image import ImageTooLarge, read_image
from app.engine.caption.trace import caption_pixels, captioner, encode_caption
from app.engine.card import LoadedModel
from app.training.tasks import shapes_data
from app.web.capacity import cost
from app.web.config import Settings
from app.web.families.base import MediaWeb, PageChoice, TraceStream
from app.web.schemas.caption import CaptionRequest
from app.wire.caption import TOP_K, CaptionWire, estimate_bytes
from app.zoo.zoo import Zoo

# What a caption costs (app.web.capacity.cost's rule, in CPU seconds of one thread), at the card's max_length words
# (nothing says before the search where a caption stops): the image read and the encoder, fixed; the beam search
# per candidate word (a batched decoder step, attention and head: Python and small tensors); the trace per word,
# whose backward runs once for the total and once per word (T + 1 sweeps of T steps, the per-word gradient over
# the grid). Against the CPU time of the whole body (the image read, search, trace, wire, JSON) of a 256 × 256 PNG
# of noise (197 kB: the image read alone 1 ms), torch_threads 1, the least of 5 runs on a quiet machine:
# shapes-lstm (12 words) 15 ms at beam 1 and 17 ms at beam 8, estimated 30 and 39; shapes-gru with an 11-word
# caption given 14–21 ms (30, 39); shapes-rnn (10 words) 12 ms (30). Beside other work the same requests measured
# up to 37 ms: the estimate is ~2× the quiet measure, on the safe side, and below expensive_seconds (50 ms).
CAPTION_FIXED = 10e-3
BEAM_WORD = 0.1e-3
TRACE_WORD = 0.12e-3


def caption_seconds(loaded: LoadedModel, beam: int) -> float:
    T = caption_card(loaded.card).max_length
    return CAPTION_FIXED + beam * T * BEAM_WORD + T * (T + 1) * TRACE_WORD + cost.trace_seconds(loaded, T)


class CaptionWeb(MediaWeb):
    name = "caption"
    reads = "pictures"

    def caption_job(self, loaded: LoadedModel, image: bytes, req: CaptionRequest, settings: Settings) -> TraceStream:
        """The image read and its limits checked now (a BadImage names the problem: over 1 MiB or 256 a side is
        413, refused from the header, the rest 422), the given caption's words and the checkpoint too; the beam
        search and the trace run later, off the event loop."""
        _, words = captioner(loaded, req.checkpoint)  # an unknown checkpoint: 404 before any work
        if len(image) > settings.max_image_bytes:  # the stream's image (REST's body is refused before it is read)
            raise ImageTooLarge(f"the file has {len(image)} bytes; the limit is {settings.max_image_bytes} "
                                "(max_image_bytes)", "bytes")  # fmt: skip
        pixels = read_image(image)
        if req.caption is not None:
            encode_caption(words, req.caption, caption_card(loaded.card).max_length)

        def wire() -> CaptionWire:
            captioning = caption_pixels(loaded, pixels, given=req.caption, beam=req.beam, top_k=TOP_K,
                                        checkpoint=req.checkpoint)  # fmt: skip
            return CaptionWire.build(loaded, captioning, req.precision)

        seconds = caption_seconds(loaded, req.beam)
        return TraceStream(wire, CaptionWire.done_frame, seconds, estimate_bytes(loaded, req.beam))

    def card_fields(self, loaded: LoadedModel) -> dict[str, Any]:
        # the words it writes, in the head's order, where a translation model gives its decoder's tokens
        return {"embed_size": 0, "vocab": None, "target_vocab": list(caption_card(loaded.card).words_vocab().tokens)}

    def page(
        self, zoo: Zoo, loaded: LoadedModel, view: str, task_models: list[LoadedModel], peers: list[LoadedModel]
    ) -> PageChoice | str:
        if view != "model":
            return f"{loaded.card.id} captions images: its page is /models/{loaded.card.id}, where you draw a scene"
        return PageChoice("caption.html", {"peers": task_models})

    def home_card(self, loaded: LoadedModel) -> dict[str, Any]:
        return {"shape": "a picture in, its caption out (attention)", "reads": "a 64 × 64 picture", "open": "Caption",
                "writes": False, "learning": False, "values": False}  # fmt: skip

    def not_compared(self, task: str, first: str, known: str) -> str | None:
        return f"the task {task!r} captions images: its models are not compared cell by cell here. " \
               f"Tasks with several cells: {known}"  # fmt: skip


CAPTION_WEB = CaptionWeb()


# The scene rules (app/training/tasks/shapes_data.py) for the page's scene editor, which draws pictures the way
# training drew them. Pillow's rasterisation of a circle or a triangle is not a rule a browser can reproduce from
# the geometry alone (which edge pixels are in), so each shape of each side s is sent as Pillow drew it: per row of
# its box, the filled span [from, to) (every row of these convex shapes is one span). The boxes sit on whole pixels,
# so a shape at (x, y) is its mask moved by (x, y).
router = APIRouter(include_in_schema=False)


def shape_mask(shape: str, s: int) -> list[list[int] | None]:
    """Per row of the s × s box, the filled columns [from, to) as Pillow draws the shape (None: an empty row)."""
    image = Image.new("RGB", (s, s), shapes_data.WHITE)
    shapes_data.draw_shape(ImageDraw.Draw(image), shapes_data.Shape(shape, "small", "red", s, 0, 0))
    filled = np.asarray(image)[:, :, 1] != shapes_data.WHITE[1]  # (s, s): red's green is 40
    rows: list[list[int] | None] = []
    for row in filled:
        cols = np.flatnonzero(row)
        rows.append([int(cols[0]), int(cols[-1]) + 1] if cols.size else None)
    return rows


@cache
def scene_rules() -> dict[str, Any]:
    sides = range(min(lo for lo, _ in shapes_data.SIZES.values()), max(hi for _, hi in shapes_data.SIZES.values()) + 1)
    return {
        "size": shapes_data.IMAGE_SIZE,
        "background": list(shapes_data.WHITE),
        "shapes": list(shapes_data.SHAPES),
        "sizes": {k: list(v) for k, v in shapes_data.SIZES.items()},
        "colours": {k: list(v) for k, v in shapes_data.COLOURS.items()},
        "gap": shapes_data.GAP,
        "margin": shapes_data.MARGIN,
        "clear": shapes_data.CLEAR,
        "masks": {shape: {str(s): shape_mask(shape, s) for s in sides} for shape in shapes_data.SHAPES},
    }


@router.get("/api/caption-scenes")
def caption_scenes() -> dict[str, Any]:
    """The rules the caption models' scenes are drawn by: the picture's size and background, the shapes, sizes
    (s in px, inclusive) and colours, the gaps, and each shape's pixels at each side s (rows of [from, to))."""
    return scene_rules()
