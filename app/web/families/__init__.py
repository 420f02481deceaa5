"""The web's family registry: each engine family's web part (app/web/families/<family>.py), by the family's name.
A new family: its module here and one line in WEB."""

from __future__ import annotations

from app.engine.card import LoadedModel
from app.engine.family import FAMILIES, family_of
from app.web.families.base import WebFamily
from app.web.families.caption import CAPTION_WEB
from app.web.families.series import SERIES_WEB
from app.web.families.speech import SPEECH_WEB
from app.web.families.token import TOKEN_WEB
from app.web.families.translation import TRANSLATION_WEB

WEB: dict[str, WebFamily] = {f.name: f for f in (TOKEN_WEB, TRANSLATION_WEB, SERIES_WEB, SPEECH_WEB, CAPTION_WEB)}
assert set(WEB) == {f.name for f in FAMILIES}, "every engine family has its web part"


def web_family(loaded: LoadedModel) -> WebFamily:
    """The web part of the model's family: the one question routes, pages and the tour ask of a model."""
    return WEB[family_of(loaded.card.kind).name]


__all__ = ["WEB", "WebFamily", "web_family"]
