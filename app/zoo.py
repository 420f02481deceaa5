"""The zoo: every model of the models folder, loaded once at start-up and checked against its card."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from app.rnn.errors import EngineError
from app.rnn.model import LoadedModel, load_model

log = logging.getLogger("unrolled.zoo")


class UnknownModel(LookupError):
    def __init__(self, model_id: str, known: list[str]) -> None:
        shown = ", ".join(known[:20]) or "none are loaded"
        super().__init__(f"model {model_id!r} does not exist; the models are: {shown}")


class Zoo:
    def __init__(self, models: dict[str, LoadedModel], skipped: dict[str, str] | None = None) -> None:
        self._models = dict(sorted(models.items()))
        self.skipped = skipped or {}  # id → why it was not loaded

    @classmethod
    def load(cls, folder: Path) -> Zoo:
        """Load every <id>.json card of the folder; a broken or missing file is logged and skipped."""
        models: dict[str, LoadedModel] = {}
        skipped: dict[str, str] = {}
        try:
            cards = sorted(folder.glob("*.json"))
        except OSError as e:
            log.error("models folder %s cannot be read: %s", folder, e)
            cards = []
        for card in cards:
            model_id = card.stem
            try:
                models[model_id] = load_model(folder, model_id)
            except (EngineError, OSError, KeyError, ValueError) as e:
                # the page says why without the server's own paths; the log keeps them
                skipped[model_id] = str(e).replace(f"{folder}{os.sep}", "").replace(str(folder), "the models folder")
                log.error("model %s skipped: %s", model_id, e)
        log.info("loaded %d models from %s (%d skipped)", len(models), folder, len(skipped))
        return cls(models, skipped)

    def get(self, model_id: str) -> LoadedModel:
        try:
            return self._models[model_id]
        except KeyError:
            raise UnknownModel(model_id, list(self._models)) from None

    def __iter__(self) -> Iterator[LoadedModel]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)
