"""SeqModel (token embedding → recurrent layers → linear head), its card, and safetensors I/O.

Parameter names and shapes are exactly torch.nn's (`embedding.weight`, `rnn.weight_ih_l0`, …, `head.weight`),
so a state dict of any torch.nn.RNN/LSTM/GRU with an embedding and a linear head loads unchanged. A card of kind
"translate" names an encoder–decoder instead (app/engine/translation/model.py), one of kind "series" a model that reads
numbers (app/engine/series/model.py); `load_model` builds whichever the card names.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from app.engine.errors import ModelFileError, UnknownCheckpoint, WrongModelKind
from app.engine.vocab import Vocab

if TYPE_CHECKING:
    from app.engine.series.model import SeriesModel
    from app.engine.translation.model import Seq2SeqModel

Cell = Literal["rnn", "lstm", "gru"]
SeqKind = Literal["next_token", "classify"]  # the shapes SeqModel computes
Kind = Literal["next_token", "classify", "translate", "series"]

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
    kind: SeqKind
    vocab_size: int
    num_outputs: int  # vocab_size for next_token models, the number of labels for classifiers
    embed_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False  # torch.nn's: each layer also runs last step to first, its states beside

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1


MAX_LAYERS = 4  # recurrent layers a model may have (imported models; the zoo trains 1 or 2)


def suffix(j: int, directions: int) -> str:
    """torch.nn's parameter suffix of entry j in its order (l0, l0_reverse, l1, l1_reverse, …): "_l1_reverse"."""
    k, d = divmod(j, directions)
    return f"_l{k}" + ("_reverse" if d else "")


class LayerWeights(NamedTuple):
    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor
    bias_hh: Tensor


def layer_views(rnn: nn.RNNBase, cell: Cell, input_size: int) -> list[nn.RNNBase]:
    """Each layer (and direction, in torch's order) of `rnn` as a one-layer, one-direction torch.nn module whose
    parameters are `rnn`'s own tensors. A reverse direction's view runs forwards: the trace gives it the input
    reversed in time."""
    D = 2 if rnn.bidirectional else 1
    layers = []
    for j in range(rnn.num_layers * D):
        in_size = input_size if j < D else rnn.hidden_size * D  # layer k+1 reads [forward; reverse] of layer k
        one = RNN_CLASSES[cell](in_size, rnn.hidden_size, num_layers=1, batch_first=True)
        one.train(False)  # inference path: torch picks its fused oneDNN kernel
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(one, f"{name}_l0", getattr(rnn, f"{name}{suffix(j, D)}"))
        layers.append(one)
    return layers


def layer_weights(rnn: nn.RNNBase, j: int) -> LayerWeights:
    """Entry j's parameters in torch's order (l0, l0_reverse, …), torch.nn's tensors themselves
    (W_ih (G·H, in), W_hh (G·H, H))."""
    get = rnn.get_parameter
    s = suffix(j, 2 if rnn.bidirectional else 1)
    return LayerWeights(get(f"weight_ih{s}"), get(f"weight_hh{s}"), get(f"bias_ih{s}"), get(f"bias_hh{s}"))


class SeqModel(nn.Module):
    """Token embedding → 1–4 recurrent layers, one or two directions → linear head applied at every step."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.cell not in RNN_CLASSES:
            raise ValueError(f"cell must be one of {sorted(RNN_CLASSES)}, not {config.cell!r}")
        if not 1 <= config.num_layers <= MAX_LAYERS:
            raise ValueError(f"num_layers must be 1 to {MAX_LAYERS}")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_size)
        self.rnn = RNN_CLASSES[config.cell](
            config.embed_size,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
        )
        self.head = nn.Linear(config.hidden_size * config.directions, config.num_outputs)
        # Single-layer views that share this model's parameters: the trace runs layer by layer.
        self.__dict__["_layers"] = None

    def forward(self, ids: Tensor) -> Tensor:
        """(B, T) token ids → (B, T, num_outputs) logits at every step."""
        out, _ = self.rnn(self.embedding(ids))  # (B, T, D·H)
        logits: Tensor = self.head(out)
        return logits

    def layer(self, k: int) -> nn.RNNBase:
        """Entry k (torch's order: l0, l0_reverse, l1, …) as a one-layer torch.nn module whose parameters are
        this model's own tensors."""
        layers: list[nn.RNNBase] | None = self.__dict__["_layers"]
        if layers is None:
            layers = layer_views(self.rnn, self.config.cell, self.config.embed_size)
            self.__dict__["_layers"] = layers
        return layers[k]

    def weights(self, k: int) -> LayerWeights:
        """Entry k's parameters, torch.nn's tensors themselves (W_ih (G·H, in), W_hh (G·H, H))."""
        return layer_weights(self.rnn, k)

    def load_state_dict_checked(self, state: dict[str, Tensor]) -> None:
        """Load a state dict, with an error that names the first key or shape that does not fit."""
        load_checked(self, state)
        self.__dict__["_layers"] = None


def load_checked(module: nn.Module, state: dict[str, Tensor]) -> None:
    """Load a state dict into `module`, with an error that names the first key or shape that does not fit."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise ModelFileError(f"weights do not fit the card: missing {missing[:3]}, unexpected {extra[:3]}")
    for key, value in own.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise ModelFileError(f"{key} has shape {tuple(state[key].shape)}; the card implies {tuple(value.shape)}")
    module.load_state_dict(state)


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
    bidirectional: bool = False  # each layer also runs last step to first (torch.nn's bidirectional=True)
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
    # translation models (kind "translate"): `vocab` is the source's, `target_vocab` the decoder's; attention_size
    # is 0 without attention; `equations` say how every number is computed; max_length bounds an output's steps.
    target_vocab: dict[str, Any] | None = None
    attention: bool = False
    attention_size: int = 0
    equations: str = ""
    max_length: int = 0
    # series models (kind "series"): the scaling of their numbers (app.engine.series.model.Scaling: features, mean, std,
    # units, step); their `vocab` has level "value" and no token but <unk>, and embed_size is 0 (no embedding).
    series: dict[str, Any] | None = None

    @property
    def gate_names(self) -> tuple[str, ...]:
        return GATES[self.cell]

    def make_vocab(self) -> Vocab:
        return Vocab.from_json(self.vocab)

    def config(self) -> ModelConfig:
        if self.kind == "translate" or self.kind == "series":
            raise WrongModelKind(f"{self.id} is a {self.kind} model: it has no SeqModel config")
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
            bidirectional=self.bidirectional,
        )

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        data = dict(data)
        data["checkpoints"] = [Checkpoint(**c) for c in data.get("checkpoints", [])]
        if data.get("kind") == "translate" and not data.get("target_vocab"):
            raise ModelFileError("card is not valid: a translation model needs its target_vocab")
        if data.get("kind") == "series" and not data.get("series"):
            raise ModelFileError("card is not valid: a series model needs its series (features, mean, std)")
        if data.get("target", "predicted") not in ("predicted", "first_token"):
            raise ModelFileError(f"card is not valid: target {data['target']!r} is not 'predicted' or 'first_token'")
        try:
            return cls(**data)
        except TypeError as e:
            raise ModelFileError(f"card is not valid: {e}") from e


@dataclass
class LoadedModel:
    """A model of the zoo: its card, its vocabulary, its final weights and its saved checkpoints.

    A translation model (card.kind "translate") holds a Seq2SeqModel, `vocab` is its source vocabulary and
    `target_vocab` its decoder's; a series model (kind "series") holds a SeriesModel and a vocabulary of level
    "value" (it reads numbers); every other model holds a SeqModel and has no target_vocab."""

    card: ModelCard
    vocab: Vocab
    model: SeqModel | Seq2SeqModel | SeriesModel
    checkpoints: dict[str, SeqModel | Seq2SeqModel | SeriesModel] = field(default_factory=dict)
    target_vocab: Vocab | None = None

    def at(self, checkpoint: str | None) -> SeqModel | Seq2SeqModel | SeriesModel:
        if checkpoint is None:
            return self.model
        try:
            return self.checkpoints[checkpoint]
        except KeyError:
            names = sorted(self.checkpoints, key=float)
            raise UnknownCheckpoint(f"checkpoint {checkpoint!r} does not exist; choose one of {names}") from None


def save_weights(weights: nn.Module | Mapping[str, Tensor], path: Path) -> None:
    """The one writer of weights: a module's state dict (or a state dict) as safetensors at `path`, each tensor
    detached and contiguous, as safetensors requires."""
    state = weights.state_dict() if isinstance(weights, nn.Module) else weights
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(path))


def save_model(folder: Path, card: ModelCard, model: nn.Module) -> None:
    """Write models/<id>.safetensors and models/<id>.json (checkpoints are written by the trainer)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(model, folder / f"{card.id}.safetensors")
    (folder / f"{card.id}.json").write_text(json.dumps(card.to_json(), indent=1) + "\n")


def build_model(card: ModelCard, weights: Path) -> SeqModel | Seq2SeqModel | SeriesModel:
    model: SeqModel | Seq2SeqModel | SeriesModel
    if card.kind == "translate":
        from app.engine.translation.model import Seq2SeqConfig, Seq2SeqModel

        model = Seq2SeqModel(Seq2SeqConfig.from_card(card))
    elif card.kind == "series":
        from app.engine.series.model import SeriesConfig, SeriesModel

        model = SeriesModel(SeriesConfig.from_card(card))
    else:
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
    target_vocab = Vocab.from_json(card.target_vocab) if card.target_vocab is not None else None
    return LoadedModel(
        card=card, vocab=card.make_vocab(), model=model, checkpoints=checkpoints, target_vocab=target_vocab
    )


__all__ = [
    "GATES",
    "MAX_LAYERS",
    "Checkpoint",
    "Kind",
    "LoadedModel",
    "ModelCard",
    "ModelConfig",
    "SeqModel",
    "build_model",
    "load_model",
    "save_model",
]
