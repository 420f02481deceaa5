"""CaptionModel: a small convolutional encoder → a grid of feature vectors → a recurrent decoder that attends over
the grid, word by word (Show, Attend and Tell's picture, with the translation models' additive attention over
image regions instead of source words), and its decoding (greedy, beam search).

The equations are EQUATIONS below (the cards carry them too).

Why this shape:
- The image enters as "ink", 1 − pixel/255 (white reads 0, so the convolutions' zero padding is more background),
  with two more channels, each pixel's column and row scaled to [−1, 1]: a convolution alone does not know where
  it is, and a caption's relation ("left of") is about where.
- Three 3 × 3 convolutions of stride 2 (64 → 32 → 16 → 8) with ReLU: an 8 × 8 grid, one feature vector per
  8 × 8-pixel region; a small shape covers about 2 × 2 regions, a big one 3 × 3.
- The decoder starts from the whole grid (h_{−1} = tanh(W_h vec(m) + b_h), and c_{−1} likewise for the LSTM):
  as a translation's decoder starts from the encoder's last state, it knows the scene before its first word.
- The context enters after the recurrence, beside the state, before the head (the translation models' placement):
  the decoder's layer is a plain torch.nn recurrent layer, run by the same layer code as every other model.
- The head also reads the previous word's context c_{t−1}: a relation ("left of") compares two places, where the
  first shape is (looked at while its words were written) and where the second is (looked at now), and with the
  two contexts side by side it is a linear choice (the larger of |Δx|, |Δy| and its sign). Without c_{t−1} the
  relation had to come from the start state alone: it was the models' main error (a quarter to two thirds of
  new scenes, where shapes, colours and sizes were each wrong in under 7 %).

Parameter names: `conv.0.weight` … `conv.2.bias`, `init_h.weight` (H × G·F), `init_h.bias`, `init_c.*` (LSTM),
`embedding.weight` (V × E), `decoder.weight_ih_l0` … (a torch.nn.RNN/LSTM/GRU), `attention.query.weight` (W_q,
A × H, no bias), `attention.key.weight` and `attention.key.bias` (W_k, A × F; b_k), `attention.energy.weight`
(vᵀ, 1 × A), `head.weight` (V × (H + 2F): h_t, c_t, c_{t−1}), `head.bias`.

The vocabulary starts <unk>, <s>, </s>: the decoder reads <s> first and ends a caption by writing </s>.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from app.engine.layers import RNN_CLASSES, Cell, LayerWeights, layer_views, layer_weights, load_checked

BOS, EOS = "<s>", "</s>"
BOS_ID, EOS_ID = 1, 2  # their fixed places in the vocabulary, after <unk>
IMAGE_SIZE = 64  # what the encoder reads: 64 × 64 RGB
STRIDES = 3  # three stride-2 convolutions: the grid is IMAGE_SIZE / 8 a side
State = Tensor | tuple[Tensor, Tensor]

EQUATIONS = """\
The equations, an image x (64 × 64 RGB, values 0–255), G = 8 × 8 grid cells j (row-major), T words t:

    input     x'_c = 1 − x_c / 255 (c = R, G, B),  x'_3 = the pixel's column, x'_4 = its row, each in [−1, 1]
    encoder   z^1 = ReLU(conv_0(x')), z^2 = ReLU(conv_1(z^1)), m = ReLU(conv_2(z^2))   (3 × 3, stride 2, pad 1)
              m_j: the feature vector (F) of grid cell j, the region of 8 × 8 pixels at (row, col) = divmod(j, 8)
    start     h_{−1} = tanh(W_h vec(m) + b_h);  LSTM: c_{−1} = tanh(W_c vec(m) + b_c)
    decoder   h_t = cell(E[y_{t−1}], h_{t−1}),  y_{−1} = <s>     (torch.nn's RNN/LSTM/GRU cell)
    attention e_tj = vᵀ tanh(W_q h_t + W_k m_j + b_k),  α_t = softmax_j(e_t),  c_t = Σ_j α_tj m_j
    head      logits_t = W_o [h_t ; c_t ; c_{t−1}] + b_o,  c_{−1} = 0   (what attention read now and one word before)
    loss      L = Σ_t −log softmax(logits_t)[y_t]     (y_{T−1} = </s>)
"""


@dataclass(frozen=True)
class CaptionConfig:
    cell: Cell
    vocab_size: int
    embed_size: int
    hidden_size: int
    channels: tuple[int, int, int] = (16, 32, 32)  # the three convolutions' outputs; the last is F
    attention_size: int = 32

    @property
    def features(self) -> int:
        """F: one grid cell's feature vector."""
        return self.channels[-1]

    @property
    def grid(self) -> int:
        """Cells a side of the grid."""
        return IMAGE_SIZE >> STRIDES

    @property
    def cells(self) -> int:
        return self.grid * self.grid


@dataclass(frozen=True)
class DecoderConfig:
    cell: Cell
    hidden_size: int


class Decoder:
    """The decoder's recurrent layer as the layer code reads it (layers.Stack)."""

    def __init__(self, rnn: nn.RNNBase, cell: Cell, input_size: int) -> None:
        self.rnn = rnn
        self.config = DecoderConfig(cell, rnn.hidden_size)
        self.input_size = input_size
        self._layers: list[nn.RNNBase] | None = None

    def layer(self, k: int) -> nn.RNNBase:
        if self._layers is None:
            self._layers = layer_views(self.rnn, self.config.cell, self.input_size)
        return self._layers[k]

    def weights(self, k: int) -> LayerWeights:
        return layer_weights(self.rnn, k)


class GridAttention(nn.Module):
    """e_tj = vᵀ tanh(W_q h_t + W_k m_j + b_k): one score per (word, grid cell)."""

    def __init__(self, hidden_size: int, features: int, size: int) -> None:
        super().__init__()
        self.query = nn.Linear(hidden_size, size, bias=False)
        self.key = nn.Linear(features, size)
        self.energy = nn.Linear(size, 1, bias=False)

    def forward(self, h: Tensor, grid: Tensor) -> Tensor:
        """(B, T, H) decoder states, (B, G, F) grid → (B, T, G) scores."""
        pre = self.query(h)[:, :, None] + self.key(grid)[:, None]  # (B, T, G, A)
        scores: Tensor = self.energy(torch.tanh(pre)).squeeze(-1)
        return scores


def ink(images: Tensor) -> Tensor:
    """(B, 64, 64, 3) pixels 0–255 (uint8 or float) → (B, 5, 64, 64): the ink and each pixel's column and row."""
    B = images.shape[0]
    x = 1.0 - images.to(torch.get_default_dtype()).permute(0, 3, 1, 2) / 255.0  # (B, 3, 64, 64)
    ramp = torch.linspace(-1.0, 1.0, IMAGE_SIZE, dtype=x.dtype)
    cols = ramp[None, None, None, :].expand(B, 1, IMAGE_SIZE, IMAGE_SIZE)
    rows = ramp[None, None, :, None].expand(B, 1, IMAGE_SIZE, IMAGE_SIZE)
    return torch.cat([x, cols, rows], dim=1)


class CaptionModel(nn.Module):
    """Pixels → conv encoder → grid → decoder from the grid → additive attention over the grid → linear head."""

    def __init__(self, config: CaptionConfig) -> None:
        super().__init__()
        if config.cell not in RNN_CLASSES:
            raise ValueError(f"cell must be one of {sorted(RNN_CLASSES)}, not {config.cell!r}")
        if config.vocab_size <= EOS_ID or len(config.channels) != STRIDES:
            raise ValueError("a caption model writes at least one word besides <unk>, <s>, </s>; it has 3 convolutions")
        self.config = config
        c, H, feats = config.channels, config.hidden_size, config.features
        self.conv = nn.ModuleList(
            [nn.Conv2d(i, o, 3, stride=2, padding=1) for i, o in zip((5, c[0], c[1]), c, strict=True)]
        )
        self.init_h = nn.Linear(config.cells * feats, H)
        self.init_c = nn.Linear(config.cells * feats, H) if config.cell == "lstm" else None
        self.embedding = nn.Embedding(config.vocab_size, config.embed_size)
        self.decoder = RNN_CLASSES[config.cell](config.embed_size, H, batch_first=True)
        self.attention = GridAttention(H, feats, config.attention_size)
        self.head = nn.Linear(H + 2 * feats, config.vocab_size)
        self.__dict__["decoder_side"] = Decoder(self.decoder, config.cell, config.embed_size)

    @property
    def decoder_side(self) -> Decoder:
        side: Decoder = self.__dict__["decoder_side"]
        return side

    def encode(self, images: Tensor) -> Tensor:
        """(B, 64, 64, 3) pixels → (B, G, F) the grid, cell j = row · 8 + column."""
        z = ink(images).to(self.init_h.weight.dtype)
        for conv in self.conv:
            z = F.relu(conv(z))
        return z.flatten(2).transpose(1, 2)  # (B, F, 8, 8) → (B, 64, F)

    def start(self, grid: Tensor) -> State:
        """(B, G, F) grid → the decoder's start state, (1, B, H) (and the LSTM's cell state)."""
        flat = grid.flatten(1)  # (B, G·F), cell by cell
        h = torch.tanh(self.init_h(flat))[None]
        if self.init_c is None:
            return h
        return h, torch.tanh(self.init_c(flat))[None]

    def output(self, h: Tensor, grid: Tensor, before: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(B, T, H) decoder states → (B, T, V) logits, (B, T, G) attention weights and (B, T, F) contexts.
        `before`: (B, 1, F) the context of the word before h's first (None: h starts the caption, c_{−1} = 0)."""
        alpha = torch.softmax(self.attention(h, grid), dim=-1)
        context = alpha @ grid  # (B, T, F)
        first = context.new_zeros(context.shape[0], 1, context.shape[2]) if before is None else before
        previous = torch.cat([first, context[:, :-1]], dim=1)  # c_{t−1}
        logits: Tensor = self.head(torch.cat([h, context, previous], dim=-1))
        return logits, alpha, context

    def forward(self, images: Tensor, words_in: Tensor) -> Tensor:
        """(B, 64, 64, 3) pixels, (B, T) decoder inputs (<s>, y_0, …, y_{T−2}) → (B, T, V) logits."""
        grid = self.encode(images)
        out, _ = self.decoder(self.embedding(words_in), self.start(grid))
        logits, _, _ = self.output(out, grid)
        return logits

    def load_state_dict_checked(self, state: dict[str, Tensor]) -> None:
        load_checked(self, state)


# --- decoding ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One output of a beam search: the ids written (</s> last if it ended) and Σ_t log p(y_t | y_<t, image) over
    every written token, </s> included (not normalised by length)."""

    ids: tuple[int, ...]
    score: float
    finished: bool


def _select(state: State, index: Tensor) -> State:
    if isinstance(state, tuple):
        return state[0][:, index], state[1][:, index]
    return state[:, index]


@torch.no_grad()
def beam_search(model: CaptionModel, pixels: Tensor, width: int, max_length: int) -> list[Candidate]:
    """Every final candidate of a beam of `width` over one image (64, 64, 3), best first. Each step keeps the
    `width − finished` best extensions of the live candidates (never <unk> or <s>), so width 1 is greedy; captions
    are at most `max_length` tokens, </s> included, and those still open then are returned unfinished."""
    grid = model.encode(pixels[None])  # (1, G, F)
    state = model.start(grid)
    ids: list[list[int]] = [[]]
    scores = torch.zeros(1, dtype=torch.float64)
    tokens = torch.tensor([[BOS_ID]], dtype=torch.long)
    before: Tensor | None = None  # (live, 1, F) the context each live candidate's last word was written with
    finished: list[Candidate] = []
    for _ in range(max_length):
        out, state = model.decoder(model.embedding(tokens), state)  # (live, 1, H)
        logits, _, before = model.output(out, grid.expand(len(ids), -1, -1), before)
        step_logp = torch.log_softmax(logits[:, 0].double(), dim=-1)  # (live, V)
        V = step_logp.shape[1]
        total = scores[:, None] + step_logp
        total[:, : BOS_ID + 1] = -torch.inf  # never write <unk> or <s>
        best = torch.topk(total.flatten(), width - len(finished))
        rows: list[int] = []
        live: list[list[int]] = []
        live_scores: list[float] = []
        for value, flat in zip(best.values.tolist(), best.indices.tolist(), strict=True):
            row, token = divmod(flat, V)
            if token == EOS_ID:
                finished.append(Candidate((*ids[row], token), value, True))
            else:
                rows.append(row)
                live.append([*ids[row], token])
                live_scores.append(value)
        ids, scores = live, torch.tensor(live_scores, dtype=torch.float64)
        if not live or len(finished) >= width:
            break
        state = _select(state, torch.tensor(rows))
        before = before[torch.tensor(rows)]
        tokens = torch.tensor([[i[-1]] for i in live], dtype=torch.long)
    open_ = [Candidate(tuple(i), float(s), False) for i, s in zip(ids, scores.tolist(), strict=True)]
    return sorted(finished + open_, key=lambda c: -c.score)[:width]


@torch.no_grad()
def greedy_batch(model: CaptionModel, images: Tensor, max_length: int) -> list[list[int]]:
    """Greedy captions (ids up to and including </s>) of many images (B, 64, 64, 3) at once, as beam_search's
    width 1 writes them."""
    grid = model.encode(images)
    state = model.start(grid)
    token = torch.full((len(images), 1), BOS_ID, dtype=torch.long)
    outputs = torch.zeros((len(images), max_length), dtype=torch.long)
    ended = torch.zeros(len(images), dtype=torch.bool)
    before: Tensor | None = None
    for t in range(max_length):
        out, state = model.decoder(model.embedding(token), state)
        logits, _, before = model.output(out, grid, before)
        logits[:, :, : BOS_ID + 1] = -torch.inf
        token = logits.argmax(-1)  # (B, 1)
        outputs[:, t] = token[:, 0]
        ended |= token[:, 0] == EOS_ID
        if bool(ended.all()):
            break
    return [row[: row.index(EOS_ID) + 1] if EOS_ID in row else row for row in outputs.tolist()]


__all__ = [
    "BOS", "BOS_ID", "EOS", "EOS_ID", "EQUATIONS", "IMAGE_SIZE", "Candidate", "CaptionConfig", "CaptionModel",
    "GridAttention", "beam_search", "greedy_batch", "ink",
]  # fmt: skip
