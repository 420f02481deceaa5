"""SeqModel: token embedding → recurrent layers → linear head.

Parameter names and shapes are exactly torch.nn's (`embedding.weight`, `rnn.weight_ih_l0`, …, `head.weight`),
so a state dict of any torch.nn.RNN/LSTM/GRU with an embedding and a linear head loads unchanged. Its card's block is
app/engine/token/card.py's; the layer pieces it shares with every family are app/engine/layers.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from app.engine.layers import MAX_LAYERS, RNN_CLASSES, Cell, LayerWeights, layer_views, layer_weights, load_checked

SeqKind = Literal["next_token", "classify"]  # the shapes SeqModel computes


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


__all__ = ["ModelConfig", "SeqKind", "SeqModel"]
