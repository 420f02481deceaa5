"""SeqModel (token embedding → recurrent layers → linear head), its card, and safetensors I/O.

Parameter names and shapes are exactly torch.nn's (`embedding.weight`, `rnn.weight_ih_l0`, …, `head.weight`),
so a state dict of any torch.nn.RNN/LSTM/GRU with an embedding and a linear head loads unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from app.rnn.errors import ModelFileError, UnknownCheckpoint
from app.rnn.tokenize import Vocab

Cell = Literal["rnn", "lstm", "gru"]
Kind = Literal["next_token", "classify"]

# torch.nn's gate order inside weight_ih/weight_hh, named in the module's words.
GATES: dict[str, tuple[str, ...]] = {
    "rnn": (),
    "lstm": ("input", "forget", "candidate", "output"),
    "gru": ("reset", "update", "candidate"),
}
RNN_CLASSES: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@dataclass(frozen=True)
class ModelConfig:
    cell: Cell
    kind: Kind
    vocab_size: int
    num_outputs: int  # vocab_size for next_token models, the number of labels for classifiers
    embed_size: int
    hidden_size: int
    num_layers: int = 1


class LayerWeights(NamedTuple):
    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor
    bias_hh: Tensor


class SeqModel(nn.Module):
    """Token embedding → 1 or 2 recurrent layers → linear head applied at every step."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.cell not in RNN_CLASSES:
            raise ValueError(f"cell must be one of {sorted(RNN_CLASSES)}, not {config.cell!r}")
        if config.num_layers not in (1, 2):
            raise ValueError("num_layers must be 1 or 2")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_size)
        self.rnn = RNN_CLASSES[config.cell](
            config.embed_size, config.hidden_size, num_layers=config.num_layers, batch_first=True
        )
        self.head = nn.Linear(config.hidden_size, config.num_outputs)
        # Single-layer views that share this model's parameters: the trace runs layer by layer.
        self.__dict__["_layers"] = None

    def forward(self, ids: Tensor) -> Tensor:
        """(B, T) token ids → (B, T, num_outputs) logits at every step."""
        out, _ = self.rnn(self.embedding(ids))  # (B, T, H)
        logits: Tensor = self.head(out)
        return logits

    def layer(self, k: int) -> nn.RNNBase:
        """Layer k as a one-layer torch.nn module whose parameters are this model's own tensors."""
        layers: list[nn.RNNBase] | None = self.__dict__["_layers"]
        if layers is None:
            layers = []
            cfg = self.config
            for i in range(cfg.num_layers):
                in_size = cfg.embed_size if i == 0 else cfg.hidden_size
                one = RNN_CLASSES[cfg.cell](in_size, cfg.hidden_size, num_layers=1, batch_first=True)
                one.train(False)  # inference path: torch picks its fused oneDNN kernel
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    setattr(one, f"{name}_l0", getattr(self.rnn, f"{name}_l{i}"))
                layers.append(one)
            self.__dict__["_layers"] = layers
        return layers[k]

    def weights(self, k: int) -> LayerWeights:
        """Layer k's parameters, torch.nn's tensors themselves (W_ih (G·H, in), W_hh (G·H, H))."""
        get = self.rnn.get_parameter
        return LayerWeights(get(f"weight_ih_l{k}"), get(f"weight_hh_l{k}"), get(f"bias_ih_l{k}"), get(f"bias_hh_l{k}"))

    def load_state_dict_checked(self, state: dict[str, Tensor]) -> None:
        """Load a state dict, with an error that names the first key or shape that does not fit."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        if missing or extra:
            raise ModelFileError(f"weights do not fit the card: missing {missing[:3]}, unexpected {extra[:3]}")
        for key, value in own.items():
            if tuple(state[key].shape) != tuple(value.shape):
                raise ModelFileError(
                    f"{key} has shape {tuple(state[key].shape)}; the card implies {tuple(value.shape)}"
                )
        self.load_state_dict(state)
        self.__dict__["_layers"] = None


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
    kind: Kind
    embed_size: int
    hidden_size: int
    num_layers: int
    vocab: dict[str, Any]
    labels: list[str] | None = None
    positive_label: str | None = None  # sentiment: which label is the positive class
    description: str = ""
    examples: list[dict[str, Any]] = field(default_factory=list)  # {"text", "note", "label"?}
    metrics: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)  # training curve: {"step", "loss", ...}
    checkpoints: list[Checkpoint] = field(default_factory=list)
    seed: int = 0
    train_seconds: float = 0.0
    data_source: str = ""
    # classifiers: the label L is measured against when a request names none. "predicted": the model's own answer
    # at the last step; "first_token": the class the input's first token names (the memory task: its symbol), so
    # that an edited input is scored against its own answer, not a target fixed for another input.
    target: Literal["predicted", "first_token"] = "predicted"

    @property
    def gate_names(self) -> tuple[str, ...]:
        return GATES[self.cell]

    def make_vocab(self) -> Vocab:
        return Vocab.from_json(self.vocab)

    def config(self) -> ModelConfig:
        vocab_size = len(self.vocab["tokens"])
        outputs = vocab_size if self.kind == "next_token" else len(self.labels or [])
        return ModelConfig(
            cell=self.cell,
            kind=self.kind,
            vocab_size=vocab_size,
            num_outputs=outputs,
            embed_size=self.embed_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        data = dict(data)
        data["checkpoints"] = [Checkpoint(**c) for c in data.get("checkpoints", [])]
        if data.get("target", "predicted") not in ("predicted", "first_token"):
            raise ModelFileError(f"card is not valid: target {data['target']!r} is not 'predicted' or 'first_token'")
        try:
            return cls(**data)
        except TypeError as e:
            raise ModelFileError(f"card is not valid: {e}") from e


@dataclass
class LoadedModel:
    """A model of the zoo: its card, its vocabulary, its final weights and its saved checkpoints."""

    card: ModelCard
    vocab: Vocab
    model: SeqModel
    checkpoints: dict[str, SeqModel] = field(default_factory=dict)

    def at(self, checkpoint: str | None) -> SeqModel:
        if checkpoint is None:
            return self.model
        try:
            return self.checkpoints[checkpoint]
        except KeyError:
            names = sorted(self.checkpoints, key=float)
            raise UnknownCheckpoint(f"checkpoint {checkpoint!r} does not exist; choose one of {names}") from None


def save_model(folder: Path, card: ModelCard, model: SeqModel) -> None:
    """Write models/<id>.safetensors and models/<id>.json (checkpoints are written by the trainer)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / f"{card.id}.safetensors"))
    (folder / f"{card.id}.json").write_text(json.dumps(card.to_json(), indent=1) + "\n")


def build_model(card: ModelCard, weights: Path) -> SeqModel:
    model = SeqModel(card.config())
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises several types for truncated or corrupt files
        raise ModelFileError(f"{weights.name} is not a readable safetensors file: {e}") from e
    model.load_state_dict_checked(state)
    model.eval()
    model.requires_grad_(False)
    return model


def load_model(folder: Path, model_id: str) -> LoadedModel:
    """Load models/<id>.json and its weights (and checkpoints), checking each against the card."""
    card_path = folder / f"{model_id}.json"
    try:
        card = ModelCard.from_json(json.loads(card_path.read_text()))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{card_path.name} cannot be read: {e}") from e
    if card.id != model_id:
        raise ModelFileError(f"{card_path.name} names itself {card.id!r}")
    model = build_model(card, folder / f"{model_id}.safetensors")
    checkpoints = {c.name: build_model(card, folder / c.file) for c in card.checkpoints}
    return LoadedModel(card=card, vocab=card.make_vocab(), model=model, checkpoints=checkpoints)


__all__ = [
    "GATES",
    "Checkpoint",
    "LoadedModel",
    "ModelCard",
    "ModelConfig",
    "SeqModel",
    "build_model",
    "load_model",
    "save_model",
]
