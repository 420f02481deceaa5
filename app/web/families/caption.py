"""The caption family on the web (kind "caption"): its card as the API and the zoo's page show it. Its requests
(POST /api/models/{id}/caption, the stream's caption mode) and its page are issue 26's next part; until then every
request of the other families' shapes is refused, saying what the model does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from app.engine.caption.card import caption_card
from app.engine.card import LoadedModel
from app.engine.errors import WrongModelKind
from app.web.config import Settings
from app.web.families.base import JacobianInput, PageChoice, StepStream, StreamRequest, TraceStream, WebFamily
from app.web.schemas.jacobian import JacobianRequest
from app.web.schemas.models import GenerateRequest, TraceRequest, TranslateRequest
from app.zoo.zoo import Zoo


def not_served(loaded: LoadedModel, what: str) -> WrongModelKind:
    return WrongModelKind(f"{loaded.card.id} captions images (it reads pictures, not text or numbers): {what} is "
                          "not served for caption models")  # fmt: skip


class CaptionWeb(WebFamily):
    name = "caption"

    def trace_job(self, loaded: LoadedModel, req: TraceRequest, settings: Settings) -> NoReturn:
        raise not_served(loaded, "a trace of text or values")

    def generate_job(self, loaded: LoadedModel, req: GenerateRequest, settings: Settings) -> NoReturn:
        raise not_served(loaded, "generation")

    def translate_job(self, loaded: LoadedModel, req: TranslateRequest, settings: Settings) -> NoReturn:
        raise not_served(loaded, "translation")

    def stream(self, loaded: LoadedModel, req: StreamRequest, settings: Settings) -> TraceStream | StepStream:
        raise not_served(loaded, "a stream of text or values")

    def jacobian_input(
        self, loaded: LoadedModel, req: JacobianRequest, settings: Settings, check_steps: Callable[[int], None]
    ) -> JacobianInput:
        raise not_served(loaded, "the Jacobian of text or values")

    def card_fields(self, loaded: LoadedModel) -> dict[str, Any]:
        # the words it writes, in the head's order, where a translation model gives its decoder's tokens
        return {"embed_size": 0, "vocab": None, "target_vocab": list(caption_card(loaded.card).words_vocab().tokens)}

    def page_card(self, loaded: LoadedModel) -> dict[str, Any] | None:
        return None

    def labels(self, loaded: LoadedModel) -> list[str] | None:
        return None

    def page(
        self, zoo: Zoo, loaded: LoadedModel, view: str, task_models: list[LoadedModel], peers: list[LoadedModel]
    ) -> PageChoice | str:
        return f"{loaded.card.id} captions images: its page is not built yet"

    def home_card(self, loaded: LoadedModel) -> dict[str, Any]:
        return {"shape": "a picture in, its caption out (attention)", "reads": "a 64 × 64 picture", "open": "Card",
                "writes": False, "learning": False, "values": False}  # fmt: skip

    def compared_by_cell(self, loaded: LoadedModel) -> bool:
        return False

    def not_compared(self, task: str, first: str, known: str) -> str | None:
        return f"the task {task!r} captions images: its models are not compared cell by cell here. " \
               f"Tasks with several cells: {known}"  # fmt: skip

    def in_lab(self, loaded: LoadedModel) -> bool:
        return False


CAPTION_WEB = CaptionWeb()
