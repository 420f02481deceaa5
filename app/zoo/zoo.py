"""The zoo: every model of the models folder, loaded at start-up and checked against its card; `rescan` picks up
cards and weights added, changed or removed since (an import into a running server), by their mtimes."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from app.engine.card import LoadedModel
from app.engine.errors import EngineError
from app.engine.family import load_model

log = logging.getLogger("unrolled.zoo")

RESCAN_SECONDS = 2.0  # how often a running server looks for changed model files (a few stats, no reads)
Signature = tuple[tuple[int, int] | None, tuple[int, int] | None]  # (mtime_ns, size) of <id>.json, <id>.safetensors


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def signatures(folder: Path) -> dict[str, Signature]:
    """Each card's id → the (mtime, size) of its card and its weights: what says a model's files changed."""
    try:
        cards = sorted(folder.glob("*.json"))
    except OSError:
        return {}
    return {c.stem: (_stat(c), _stat(c.with_suffix(".safetensors"))) for c in cards}


SHOWN_ID = 64  # characters of an id echoed in a message: an id is at most 64; a bad one of 5,000 is cut


def shown_id(model_id: str) -> str:
    """An id as a message quotes it: whole up to SHOWN_ID characters, else its start and "…"."""
    return repr(model_id) if len(model_id) <= SHOWN_ID else f"{model_id[:SHOWN_ID]!r}…"


class UnknownModel(LookupError):
    def __init__(self, model_id: str, known: list[str]) -> None:
        shown = ", ".join(known[:20]) or "none are loaded"
        super().__init__(f"model {shown_id(model_id)} does not exist; the models are: {shown}")


class Zoo:
    def __init__(
        self,
        models: dict[str, LoadedModel],
        skipped: dict[str, str] | None = None,
        seen: dict[str, Signature] | None = None,
    ) -> None:
        self._models = dict(sorted(models.items()))
        self.skipped = skipped or {}  # id → why it was not loaded
        self.seen = seen or {}  # id → its files' signature when loaded (or skipped)
        self._extra: dict[str, LoadedModel] = {}  # models not from the folder (the lab's): see with_models
        self._listed: list[LoadedModel] | None = None

    def with_models(self, extra: dict[str, LoadedModel]) -> Zoo:
        """This zoo with models that are not in its folder (those trained live in the lab): a view, no copy.

        Every route finds them by id. They are listed (iterated: /api/models, the home page, a task's peers)
        only when the zoo has no model of their task: listed beside the zoo's own memory models, a run's
        half-trained models would take their place on the compare page and in the tour (peers are the first of
        each cell by id, and "lab-…" sorts first); without any, a page about one needs its task listed."""
        if not extra:
            return self
        view = Zoo.__new__(Zoo)
        view._models, view.skipped, view.seen = self._models, self.skipped, self.seen
        view._extra = {i: m for i, m in extra.items() if i not in self._models}
        view._listed = None
        return view

    @classmethod
    def load(cls, folder: Path) -> Zoo:
        """Load every <id>.json card of the folder; a broken or missing file is logged and skipped."""
        try:
            next(folder.iterdir(), None)
        except OSError as e:
            log.error("models folder %s cannot be read: %s", folder, e)
        seen = signatures(folder)
        models, skipped = _load_each(folder, list(seen))
        log.info("loaded %d models from %s (%d skipped)", len(models), folder, len(skipped))
        return cls(models, skipped, seen)

    def rescan(self, folder: Path) -> Zoo | None:
        """A new zoo if a card or its weights were added, changed or removed since this one was loaded (only
        those models are loaded again), else None."""
        now = signatures(folder)
        if now == self.seen:
            return None
        changed = [i for i, sig in now.items() if self.seen.get(i) != sig]
        models = {i: m for i, m in self._models.items() if i in now and i not in changed}
        skipped = {i: why for i, why in self.skipped.items() if i in now and i not in changed}
        fresh, failed = _load_each(folder, changed)
        log.info("models folder changed: %d loaded, %d skipped, %d gone", len(fresh), len(failed),
                 len(set(self.seen) - set(now)))  # fmt: skip
        return Zoo({**models, **fresh}, {**skipped, **failed}, now)

    def get(self, model_id: str) -> LoadedModel:
        found = self._models.get(model_id) or self._extra.get(model_id)
        if found is None:
            raise UnknownModel(model_id, [m.card.id for m in self])
        return found

    def listed(self) -> list[LoadedModel]:
        if self._listed is None:
            tasks = {m.card.task for m in self._models.values()}
            extra = [m for _, m in sorted(self._extra.items()) if m.card.task not in tasks]
            self._listed = [*self._models.values(), *extra]
        return self._listed

    def __iter__(self) -> Iterator[LoadedModel]:
        return iter(self._models.values()) if not self._extra else iter(self.listed())

    def __len__(self) -> int:
        return len(self._models) if not self._extra else len(self.listed())


def _load_each(folder: Path, ids: list[str]) -> tuple[dict[str, LoadedModel], dict[str, str]]:
    models: dict[str, LoadedModel] = {}
    skipped: dict[str, str] = {}
    for model_id in ids:
        try:
            models[model_id] = load_model(folder, model_id)
        except (EngineError, OSError, KeyError, ValueError) as e:
            # the page says why without the server's own paths; the log keeps them
            skipped[model_id] = str(e).replace(f"{folder}{os.sep}", "").replace(str(folder), "the models folder")
            log.error("model %s skipped: %s", model_id, e)
    return models, skipped
