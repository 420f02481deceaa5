"""What a tour scene asks of a model's family: what the scene shows it as, whether it fits the scene's view, its
labels and (a translation model) its attention. The tour sits below the web (`make lint`'s layers), so its part
of each family lives here, keyed by the engine family's name (app/engine/family.py), not in app/web/families."""

from __future__ import annotations

from typing import Protocol

from app.engine.card import LoadedModel
from app.engine.family import FAMILIES, family_of
from app.engine.token.card import token_card
from app.engine.translation.card import translation_card


class SceneRules(Protocol):
    def shape(self, m: LoadedModel) -> str:
        """What a scene shows it as: "next_token", "classify", "melody", "translate" or "series"."""
        ...

    def problem(self, m: LoadedModel, view: str, needs_next_token: bool, guest: bool) -> str | None:
        """What stands in the way of showing it in a scene of `view` (None: nothing); `guest`: it is shown as
        another view's panel (the forecast panel of a sequences scene)."""
        ...

    def in_compare_scene(self, m: LoadedModel) -> bool: ...

    def labels(self, m: LoadedModel) -> list[str] | None: ...

    def attention(self, m: LoadedModel) -> bool:
        """Whether its decoder attends: a translate scene pairs a model with its peer of the other setting."""
        ...


class TokenScenes:
    def shape(self, m: LoadedModel) -> str:
        return "melody" if m.card.kind == "next_token" and m.vocab.level == "note" else m.card.kind

    def problem(self, m: LoadedModel, view: str, needs_next_token: bool, guest: bool) -> str | None:
        if needs_next_token and m.card.kind != "next_token":
            return f"{m.card.id} is a classifier: a {view} scene needs a next-token model"
        if view == "translate":
            return f"{m.card.id} is a {m.card.kind} model: a translate scene needs a translation model"
        if view == "transcribe":
            return f"{m.card.id} is a {m.card.kind} model: a transcribe scene needs a speech model"
        if view == "caption":
            return f"{m.card.id} is a {m.card.kind} model: a caption scene needs a caption model"
        return None

    def in_compare_scene(self, m: LoadedModel) -> bool:
        return True

    def labels(self, m: LoadedModel) -> list[str] | None:
        return token_card(m.card).labels

    def attention(self, m: LoadedModel) -> bool:
        return False


class TranslationScenes:
    def shape(self, m: LoadedModel) -> str:
        return "translate"

    def problem(self, m: LoadedModel, view: str, needs_next_token: bool, guest: bool) -> str | None:
        if needs_next_token:
            return f"{m.card.id} translates: a {view} scene needs a next-token model"
        if view != "translate":
            return f'{m.card.id} translates: show it in a translate scene (view "translate")'
        return None

    def in_compare_scene(self, m: LoadedModel) -> bool:
        return False  # its models are shown in a translate scene

    def labels(self, m: LoadedModel) -> list[str] | None:
        return None

    def attention(self, m: LoadedModel) -> bool:
        return translation_card(m.card).attention


# The views whose scenes need a model of another family than a series model, and which.
OTHER_MODELS = {"translate": "a translation model", "transcribe": "a speech model", "caption": "a caption model"}


class SeriesScenes:
    def shape(self, m: LoadedModel) -> str:
        return "series"

    def problem(self, m: LoadedModel, view: str, needs_next_token: bool, guest: bool) -> str | None:
        if view != "series" and not guest:
            return (
                f'{m.card.id} reads numbers: show it in a series scene (view "series"), or as the forecast panel of '
                "a sequences scene"
            )
        if needs_next_token:
            return f"{m.card.id} is a classifier: a {view} scene needs a next-token model"
        if view in OTHER_MODELS:
            what = OTHER_MODELS[view]
            return f"{m.card.id} is a series model: a {view} scene needs {what}"
        return None

    def in_compare_scene(self, m: LoadedModel) -> bool:
        return True

    def labels(self, m: LoadedModel) -> list[str] | None:
        return None

    def attention(self, m: LoadedModel) -> bool:
        return False


class SpeechScenes:
    def shape(self, m: LoadedModel) -> str:
        return "transcribe"

    def problem(self, m: LoadedModel, view: str, needs_next_token: bool, guest: bool) -> str | None:
        if view != "transcribe":
            return f'{m.card.id} transcribes speech: show it in a transcribe scene (view "transcribe")'
        return None

    def in_compare_scene(self, m: LoadedModel) -> bool:
        return False

    def labels(self, m: LoadedModel) -> list[str] | None:
        return None

    def attention(self, m: LoadedModel) -> bool:
        return False


class CaptionScenes:
    def shape(self, m: LoadedModel) -> str:
        return "caption"

    def problem(self, m: LoadedModel, view: str, needs_next_token: bool, guest: bool) -> str | None:
        if view != "caption":
            return f'{m.card.id} captions images: show it in a caption scene (view "caption")'
        return None

    def in_compare_scene(self, m: LoadedModel) -> bool:
        return False

    def labels(self, m: LoadedModel) -> list[str] | None:
        return None

    def attention(self, m: LoadedModel) -> bool:
        return False


SCENES: dict[str, SceneRules] = {"token": TokenScenes(), "translation": TranslationScenes(), "series": SeriesScenes(),
                                 "speech": SpeechScenes(), "caption": CaptionScenes()}  # fmt: skip
assert set(SCENES) == {f.name for f in FAMILIES}, "every engine family has its scene rules"


def scene_rules(m: LoadedModel) -> SceneRules:
    return SCENES[family_of(m.card.kind).name]
