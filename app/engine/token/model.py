"""SeqModel: token embedding → recurrent layers → linear head.

Parameter names and shapes are exactly torch.nn's (`embedding.weight`, `rnn.weight_ih_l0`, …, `head.weight`),
so a state dict of any torch.nn.RNN/LSTM/GRU with an embedding and a linear head loads unchanged. Its card's block is
app/engine/token/card.py's; the layer pieces it shares with every family are app/engine/layers.py's. Its cell may
also be one of the linear recurrences of app/engine/modern ("mingru", "minlstm", "s6"; one direction): then `rnn`
is a ModernStack (`rnn.layers.0.…`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from torch import Tensor, nn

from app.engine.layers import CELLS, RNN_CLASSES, Cell, RecurrentModel, check_layers
from app.engine.modern.layer import ModernCell, ModernStack

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


class SeqModel(RecurrentModel):
    """Token embedding → 1–4 recurrent layers, one or two directions → linear head applied at every step."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        check_layers(config.cell, config.num_layers, CELLS)
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_size)
        if config.cell not in RNN_CLASSES:
            if config.bidirectional:
                raise ValueError(f"a {config.cell} model reads one direction: bidirectional is for torch.nn's cells")
            cell = cast(ModernCell, config.cell)
            self.rnn = ModernStack(cell, config.embed_size, config.hidden_size, config.num_layers)
        else:
            self.rnn = RNN_CLASSES[config.cell](
                config.embed_size,
                config.hidden_size,
                num_layers=config.num_layers,
                batch_first=True,
                bidirectional=config.bidirectional,
            )
        self.head = nn.Linear(config.hidden_size * config.directions, config.num_outputs)

    def forward(self, ids: Tensor) -> Tensor:
        """(B, T) token ids → (B, T, num_outputs) logits at every step."""
        out, _ = self.rnn(self.embedding(ids))  # (B, T, D·H)
        logits: Tensor = self.head(out)
        return logits


__all__ = ["ModelConfig", "SeqKind", "SeqModel"]
