"""The model card (models/<id>.json): what every family shares, plus the family's own block; the loaded model.

A card file holds the common fields at its top level and the family's block under the family's name:

    {"id": "charlm-lstm", "task": "charlm", "cell": "lstm", "kind": "next_token", …, "token": {"embed_size": 16, …}}

`kind` stays the public name (REST bodies, card files); the registry (app/engine/family.py) says which family a
kind belongs to and which block type it reads. This module imports no family: the block's type is handed in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

from safetensors.torch import save_file
from torch import Tensor, nn

from app.engine.errors import ModelFileError, UnknownCheckpoint
from app.engine.layers import GATES, Cell
from app.engine.vocab import Vocab

# Before issue 24 a card was flat: ModelCard was the union of every family's fields, all written at the top level
# (each at its default where a family had none). Cards in that form are still read, because people keep imported
# cards in their own folders; these are the keys that form may hold beside the common ones.
LEGACY_FLAT_KEYS = frozenset(
    {"embed_size", "labels", "positive_label", "target", "target_vocab", "attention", "attention_size",
     "equations", "max_length", "series"}
)  # fmt: skip


class CardBlock(Protocol):
    """A family's own part of a card: a dataclass defined in the family's folder."""

    FAMILY: ClassVar[str]  # the family's name: the key the block is written under
    DOES: ClassVar[str]  # what its models do, for messages: "reads text", "translates", "reads numbers"

    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self: ...


@dataclass
class Checkpoint:
    name: str  # "0", "5", "20", "100": percent of training
    step: int
    file: str  # relative to the models folder


@dataclass
class ModelCard:
    """Everything a person or the app needs to know about a trained model, stored as models/<id>.json."""

    id: str
    task: str
    cell: Cell
    kind: str  # the public name of what the model does ("next_token", "classify", "translate", "series")
    hidden_size: int
    num_layers: int
    vocab: dict[str, Any]  # what the model reads (a translation model: its source side)
    block: CardBlock  # the family's own fields (app/engine/<family>/card.py)
    bidirectional: bool = False  # each layer also runs last step to first (torch.nn's bidirectional=True)
    description: str = ""
    examples: list[dict[str, Any]] = field(default_factory=list)  # {"text", "note", "label"?}
    metrics: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)  # training curve: {"step", "loss", ...}
    checkpoints: list[Checkpoint] = field(default_factory=list)
    seed: int = 0
    train_seconds: float = 0.0
    data_source: str = ""

    @property
    def gate_names(self) -> tuple[str, ...]:
        return GATES[self.cell]

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def make_vocab(self) -> Vocab:
        return Vocab.from_json(self.vocab)

    def to_json(self) -> dict[str, Any]:
        common = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "block"}
        common["checkpoints"] = [asdict(c) for c in self.checkpoints]
        return {**common, self.block.FAMILY: self.block.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any], block: type[CardBlock]) -> ModelCard:
        """Read a card whose kind the registry has resolved to `block`'s family: the current form or the flat
        form of before (converted here, in one place)."""
        data = dict(data)
        common = {f.name for f in fields(cls)} - {"block"}
        rest = {k: data.pop(k) for k in list(data) if k not in common}
        nested = rest.pop(block.FAMILY, None)
        if rest:  # the flat form: the block's fields at the top level (a series' scaling was already nested)
            unknown = sorted(set(rest) - LEGACY_FLAT_KEYS)
            if unknown:
                raise ModelFileError(f"card is not valid: unknown fields {unknown}")
            block_fields = {f.name for f in fields(block)}  # type: ignore[arg-type]  # blocks are dataclasses
            if isinstance(nested, dict):  # a block and its own fields beside it: which one is meant is unknown
                misplaced = sorted(set(rest) & block_fields)
                if misplaced:
                    raise ModelFileError(f"card is not valid: {misplaced} belong in its {block.FAMILY!r} block")
            else:
                nested = {k: v for k, v in rest.items() if k in block_fields}
        if not isinstance(nested, dict):
            raise ModelFileError(f"card is not valid: a {data.get('kind')} model needs its {block.FAMILY!r} block")
        try:
            data["checkpoints"] = [Checkpoint(**c) for c in data.get("checkpoints", [])]
            return cls(**data, block=block.from_json(nested))
        except TypeError as e:
            raise ModelFileError(f"card is not valid: {e}") from e


@dataclass
class LoadedModel:
    """A model of the zoo: its card, its vocabulary, its final weights and its saved checkpoints.

    `model` is the family's module (app/engine/<family>/model.py), built by its family from the card; a family
    whose output has its own vocabulary (translation: the decoder's) gives it as `target_vocab`."""

    card: ModelCard
    vocab: Vocab
    model: nn.Module
    checkpoints: dict[str, nn.Module] = field(default_factory=dict)
    target_vocab: Vocab | None = None

    def at(self, checkpoint: str | None) -> nn.Module:
        if checkpoint is None:
            return self.model
        try:
            return self.checkpoints[checkpoint]
        except KeyError:
            names = sorted(self.checkpoints, key=float)
            raise UnknownCheckpoint(f"checkpoint {checkpoint!r} does not exist; choose one of {names}") from None


def card_text(card: ModelCard) -> str:
    """A card file's text, as the zoo, the trainer and the importer write it."""
    return json.dumps(card.to_json(), indent=1) + "\n"


def save_weights(weights: nn.Module | Mapping[str, Tensor], path: Path) -> None:
    """The one writer of weights: a module's state dict (or a state dict) as safetensors at `path`, each tensor
    detached and contiguous, as safetensors requires."""
    state = weights.state_dict() if isinstance(weights, nn.Module) else weights
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(path))


def save_model(folder: Path, card: ModelCard, model: nn.Module) -> None:
    """Write models/<id>.safetensors and models/<id>.json (checkpoints are written by the trainer)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(model, folder / f"{card.id}.safetensors")
    (folder / f"{card.id}.json").write_text(card_text(card))


__all__ = ["CardBlock", "Checkpoint", "LoadedModel", "ModelCard", "card_text", "save_model", "save_weights"]
