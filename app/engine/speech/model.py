"""SpeechModel: log-mel frames → frames stacked into steps → recurrent layers → a head over the alphabet and blank.

    x_t = [f_{St} ; f_{St+1} ; … ; f_{St+S−1}] · scale     (S = `stack` frames side by side, each band's mean
                                                          over the clip removed first: a level change is a
                                                          constant in the log, and the mean takes it away;
                                                          with `variance`, each band also divided by its
                                                          standard deviation over the clip, floored at
                                                          STD_FLOOR: noise, which flattens a band's swings,
                                                          and quiet voices then reach the network at one scale)
    h_t = cell(x_t, h_{t−1})                              (torch.nn's RNN/LSTM/GRU, 1–4 layers, one or two
                                                          directions; the reverse direction reads x_{T−1} … x_0)
    logits_t = W_o [h_t ; h_t^reverse] + b_o              (C = 1 + len(alphabet) classes; class 0 is CTC's blank)

Stacking S frames makes a step 10·S ms: three frames (30 ms) give a third of the steps, so BPTT crosses a third as
many, and a spoken number of 2 s is 67 steps instead of 200, still more steps than the letters CTC must place.

Parameter names are torch.nn's (`rnn.weight_ih_l0` (G·H × 40·S), `rnn.weight_ih_l0_reverse`, …, `head.weight`
(C × D·H), `head.bias`): a state dict of torch.nn.GRU/LSTM/RNN over stacked frames with a linear head, as
bench/speech_feasibility.py trains, loads unchanged. Its card's block is app/engine/speech/card.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from app.engine.layers import MAX_LAYERS, RNN_CLASSES, Cell, RecurrentModel

# The smallest standard deviation a band is divided by (natural-log units, about 4.3 dB): a band that hardly moves
# over a clip (above the Nyquist of audio recorded at 8 kHz, or digital silence) is left near 0, not blown up to
# unit variance.
STD_FLOOR = 0.5


@dataclass(frozen=True)
class SpeechConfig:
    cell: Cell
    bands: int  # log-mel bands per frame (the front end's N_MELS)
    stack: int  # frames side by side in one step
    hidden_size: int
    classes: int  # the head's outputs: blank + the alphabet
    num_layers: int = 2
    bidirectional: bool = True
    scale: float = 0.25  # what the mean-removed log-mel values are multiplied by: about unit scale at the input
    variance: bool = False  # each band divided by its standard deviation over the clip too (card.py's `variance`)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def input_size(self) -> int:
        """What W_ih reads at a step: S frames of bands."""
        return self.bands * self.stack


def frames_to_steps(frames: Tensor, stack: int, scale: float, variance: bool = False) -> Tensor:
    """(T, bands) log-mel frames → (T // stack, bands·stack) steps: each band's mean over the clip removed (and,
    with `variance`, each band divided by its standard deviation over the clip, floored at STD_FLOOR), `stack`
    frames side by side, scaled. The frames left over at the end (fewer than `stack`) are not read; the mean and
    deviation are the whole clip's."""
    frames = frames - frames.mean(dim=0, keepdim=True)  # (T, bands)
    if variance:
        frames = frames / frames.pow(2).mean(dim=0, keepdim=True).sqrt().clamp_min(STD_FLOOR)
    T = frames.shape[0] // stack * stack
    return frames[:T].reshape(T // stack, stack * frames.shape[1]) * scale  # (T', bands·stack)


class SpeechModel(RecurrentModel):
    """Stacked log-mel frames → 1–4 recurrent layers, one or two directions → a linear head at every step."""

    def __init__(self, config: SpeechConfig) -> None:
        super().__init__()
        if config.cell not in RNN_CLASSES:
            raise ValueError(f"cell must be one of {sorted(RNN_CLASSES)}, not {config.cell!r}")
        if not 1 <= config.num_layers <= MAX_LAYERS:
            raise ValueError(f"num_layers must be 1 to {MAX_LAYERS}")
        if config.stack < 1 or config.bands < 1 or config.classes < 2:
            raise ValueError("a speech model stacks at least 1 frame of at least 1 band, over blank and a character")
        self.config = config
        self.rnn = RNN_CLASSES[config.cell](
            config.input_size,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
        )
        self.head = nn.Linear(config.hidden_size * config.directions, config.classes)
        self.__dict__["_layers"] = None  # single-layer views sharing these parameters: the trace runs layer by layer

    def steps(self, frames: Tensor) -> Tensor:
        """(T, bands) log-mel frames → (T', bands·stack) what the first layer reads."""
        return frames_to_steps(frames, self.config.stack, self.config.scale, self.config.variance)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T', bands·stack) steps → (B, T', C) logits at every step (CTC's log-softmax is the loss's)."""
        out, _ = self.rnn(x)  # (B, T', D·H)
        logits: Tensor = self.head(out)
        return logits


__all__ = ["STD_FLOOR", "SpeechConfig", "SpeechModel", "frames_to_steps"]
