"""Seq2SeqModel: an encoder–decoder of torch.nn recurrent layers, with or without additive attention, and its
decoding (greedy, beam search, after a forced prefix).

The equations are EQUATIONS below (the cards carry them too).

The context enters after the decoder's recurrence, beside its state, before the head (Luong's placement with
Bahdanau's additive score): the decoder's layers are plain recurrent layers run by the same layer code as every
other model, and each encoder step's gradient through attention arrives from each decoder step directly.

Parameter names are torch.nn's under fixed prefixes: `encoder_embedding.weight`, `encoder.weight_ih_l0` …
(a torch.nn.RNN/LSTM/GRU), `decoder_embedding.weight`, `decoder.weight_ih_l0` …, `attention.query.weight`
(W_q, no bias), `attention.key.weight` and `attention.key.bias` (W_k, b_k), `attention.energy.weight` (vᵀ, 1×A),
`head.weight` (W_o, V × 2H with attention, V × H without) and `head.bias`.

The target vocabulary starts <unk>, <s>, </s>: the decoder reads <s> first and ends an output by writing </s>.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from app.engine.layers import RNN_CLASSES, Cell, LayerWeights, layer_views, layer_weights, load_checked

BOS, EOS = "<s>", "</s>"
BOS_ID, EOS_ID = 1, 2  # their fixed places in a target vocabulary, after <unk>
# A recurrent state as torch.nn passes it: h (L, B, H), or (h, c) for the LSTM.
State = Tensor | tuple[Tensor, Tensor]

EQUATIONS = """\
The equations, J source steps j, T target steps t, torch.nn's own cell formulas for cell(·):

    encoder   h_j^l = cell(x_j^l, h_{j−1}^l),  x_j^0 = E_src[src_j],  x_j^l = h_j^{l−1},  h_{−1}^l = 0
    decoder   s_t^l = cell(u_t^l, s_{t−1}^l),  u_t^0 = E_tgt[y_{t−1}],  u_t^l = s_t^{l−1},  y_{−1} = <s>,
              s_{−1}^l = h_{J−1}^l
              (an LSTM's cell states likewise: the decoder starts from the encoder's last state, layer by layer)
    attention e_tj = vᵀ tanh(W_q s_t + W_k h_j + b_k),  α_t = softmax_j(e_t),  c_t = Σ_j α_tj h_j
              (s_t, h_j: the top layers' states)
    head      logits_t = W_o [s_t ; c_t] + b_o       without attention: logits_t = W_o s_t + b_o
    loss      L = Σ_t −log softmax(logits_t)[y_t]     (y_{T−1} = </s>)
"""


@dataclass(frozen=True)
class Seq2SeqConfig:
    cell: Cell
    source_vocab_size: int
    target_vocab_size: int
    embed_size: int
    hidden_size: int
    num_layers: int = 1
    attention_size: int = 0  # A, the additive attention's width; 0: no attention

    @property
    def attention(self) -> bool:
        return self.attention_size > 0


@dataclass(frozen=True)
class SideConfig:
    cell: Cell
    hidden_size: int


class Side:
    """One side's recurrent layers (encoder or decoder) as the trace's layer code reads them (trace.Stack)."""

    def __init__(self, rnn: nn.RNNBase, cell: Cell, input_size: int) -> None:
        self.rnn = rnn
        self.config = SideConfig(cell, rnn.hidden_size)
        self.input_size = input_size
        self._layers: list[nn.RNNBase] | None = None

    def layer(self, k: int) -> nn.RNNBase:
        if self._layers is None:
            self._layers = layer_views(self.rnn, self.config.cell, self.input_size)
        return self._layers[k]

    def weights(self, k: int) -> LayerWeights:
        return layer_weights(self.rnn, k)


class AdditiveAttention(nn.Module):
    """e_tj = vᵀ tanh(W_q s_t + W_k h_j + b_k): one score per (decoder step, encoder step)."""

    def __init__(self, hidden_size: int, size: int) -> None:
        super().__init__()
        self.query = nn.Linear(hidden_size, size, bias=False)
        self.key = nn.Linear(hidden_size, size)
        self.energy = nn.Linear(size, 1, bias=False)

    def forward(self, s: Tensor, memory: Tensor) -> Tensor:
        """(B, T, H) decoder states, (B, J, H) encoder states → (B, T, J) scores."""
        pre = self.query(s)[:, :, None] + self.key(memory)[:, None]  # (B, T, J, A)
        scores: Tensor = self.energy(torch.tanh(pre)).squeeze(-1)
        return scores


class Seq2SeqModel(nn.Module):
    """Source embedding → encoder → decoder from the encoder's last state → (attention) → linear head."""

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        if config.cell not in RNN_CLASSES:
            raise ValueError(f"cell must be one of {sorted(RNN_CLASSES)}, not {config.cell!r}")
        if config.num_layers not in (1, 2):
            raise ValueError("num_layers must be 1 or 2")
        self.config = config
        rnn, E, H, L = RNN_CLASSES[config.cell], config.embed_size, config.hidden_size, config.num_layers
        self.encoder_embedding = nn.Embedding(config.source_vocab_size, E)
        self.encoder = rnn(E, H, num_layers=L, batch_first=True)
        self.decoder_embedding = nn.Embedding(config.target_vocab_size, E)
        self.decoder = rnn(E, H, num_layers=L, batch_first=True)
        self.attention = AdditiveAttention(H, config.attention_size) if config.attention else None
        self.head = nn.Linear(2 * H if config.attention else H, config.target_vocab_size)
        # The layer code's views of each side; plain attributes, so that they are not registered as submodules.
        self.__dict__["encoder_side"] = Side(self.encoder, config.cell, E)
        self.__dict__["decoder_side"] = Side(self.decoder, config.cell, E)

    @property
    def encoder_side(self) -> Side:
        side: Side = self.__dict__["encoder_side"]
        return side

    @property
    def decoder_side(self) -> Side:
        side: Side = self.__dict__["decoder_side"]
        return side

    def forward(self, source: Tensor, target_in: Tensor, source_lengths: Tensor | None = None) -> Tensor:
        """(B, J) source ids, (B, T) decoder inputs (<s>, y_0, …, y_{T−2}), (B,) real source lengths if the
        source is right-padded → (B, T, V) logits."""
        memory, state = self.encode(source, source_lengths)
        out, _ = self.decoder(self.decoder_embedding(target_in), state)  # (B, T, H)
        logits, _ = self.output(out, memory, source_lengths)
        return logits

    def encode(self, source: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, State]:
        """(B, J) ids → (B, J, H) top-layer states (zeros after each row's length) and the last state."""
        x = self.encoder_embedding(source)  # (B, J, E)
        if lengths is None:
            memory, state = self.encoder(x)
            return memory, state
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, state = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=source.shape[1])
        return memory, state

    def output(self, s: Tensor, memory: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """(B, T, H) decoder states → (B, T, V) logits and (B, T, J) attention weights (None without)."""
        if self.attention is None:
            logits: Tensor = self.head(s)
            return logits, None
        scores = self.attention(s, memory)  # (B, T, J)
        if lengths is not None:
            pad = torch.arange(memory.shape[1])[None, :] >= lengths[:, None]  # (B, J)
            scores = scores.masked_fill(pad[:, None, :], -torch.inf)
        alpha = torch.softmax(scores, dim=-1)
        context = alpha @ memory  # (B, T, H)
        return self.head(torch.cat([s, context], dim=-1)), alpha

    def load_state_dict_checked(self, state: dict[str, Tensor]) -> None:
        """Load a state dict, with an error that names the first key or shape that does not fit."""
        load_checked(self, state)


# --- decoding ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One output of a beam search: the ids written (a forced prefix first; </s> last if it ended) and its
    score, Σ_t log p(y_t | y_<t, source) over every written token, the prefix's and </s> included (not
    normalised by length)."""

    ids: tuple[int, ...]
    score: float
    finished: bool  # ended with </s>; False: stopped at max_length


def _select(state: State, index: Tensor) -> State:
    if isinstance(state, tuple):
        return state[0][:, index], state[1][:, index]
    return state[:, index]


@torch.no_grad()
def beam_search(
    model: Seq2SeqModel, source_ids: list[int], width: int, max_length: int, prefix_ids: list[int] | None = None
) -> list[Candidate]:
    """Every final candidate of a beam of `width`, best first.

    The beam shrinks as candidates end: each step keeps the `width − finished` best extensions of the live
    candidates (never <unk> or <s>), so width 1 is greedy decoding. Outputs are at most `max_length` tokens,
    </s> and the prefix included; candidates still open then are returned unfinished. Scores are sums of
    log-probabilities, so an extension never scores higher than its candidate: once `width` have ended, no
    open one could beat them."""
    if not 1 <= width <= 8:
        raise ValueError("beam width must be between 1 and 8")
    prefix = list(prefix_ids or [])
    if len(prefix) >= max_length:
        raise ValueError(f"the prefix has {len(prefix)} tokens; max_length {max_length} leaves none to write")
    src = torch.tensor([source_ids], dtype=torch.long)
    memory, state = model.encode(src)  # (1, J, H)
    # Read <s> and the prefix in one call: the prefix's log-probabilities count in every candidate's score.
    inputs = torch.tensor([[BOS_ID, *prefix]], dtype=torch.long)
    out, state = model.decoder(model.decoder_embedding(inputs), state)
    logits, _ = model.output(out, memory)
    logp = torch.log_softmax(logits[0].double(), dim=-1)  # (P+1, V)
    score0 = float(logp[torch.arange(len(prefix)), torch.tensor(prefix, dtype=torch.long)].sum()) if prefix else 0.0
    ids: list[list[int]] = [prefix]
    scores = torch.tensor([score0], dtype=torch.float64)
    step_logp = logp[-1:]  # (live, V): the next token's log-probabilities of each live candidate
    finished: list[Candidate] = []
    V = step_logp.shape[1]
    for _ in range(len(prefix), max_length):
        total = scores[:, None] + step_logp  # (live, V)
        total[:, : BOS_ID + 1] = -torch.inf  # never write <unk> or <s>
        keep = width - len(finished)
        best = torch.topk(total.flatten(), keep)
        live_rows: list[int] = []
        live_ids: list[list[int]] = []
        live_scores: list[float] = []
        for value, flat in zip(best.values.tolist(), best.indices.tolist(), strict=True):
            row, token = divmod(flat, V)
            if token == EOS_ID:
                finished.append(Candidate((*ids[row], token), value, True))
            else:
                live_rows.append(row)
                live_ids.append([*ids[row], token])
                live_scores.append(value)
        if not live_rows or len(finished) >= width or len(live_ids[0]) >= max_length:
            ids, scores = live_ids, torch.tensor(live_scores, dtype=torch.float64)
            break
        index = torch.tensor(live_rows)
        state = _select(state, index)
        tokens = torch.tensor([[i[-1]] for i in live_ids], dtype=torch.long)
        out, state = model.decoder(model.decoder_embedding(tokens), state)  # (live, 1, H)
        logits, _ = model.output(out, memory.expand(len(live_rows), -1, -1))
        step_logp = torch.log_softmax(logits[:, 0].double(), dim=-1)
        ids, scores = live_ids, torch.tensor(live_scores, dtype=torch.float64)
    open_ = [Candidate(tuple(i), float(s), False) for i, s in zip(ids, scores.tolist(), strict=True)]
    return sorted(finished + open_, key=lambda c: -c.score)[:width]


def greedy(
    model: Seq2SeqModel, source_ids: list[int], max_length: int, prefix_ids: list[int] | None = None
) -> Candidate:
    """The most likely token at every step (after a forced prefix), until </s> or max_length tokens."""
    return beam_search(model, source_ids, 1, max_length, prefix_ids)[0]


__all__ = [
    "BOS",
    "BOS_ID",
    "EOS",
    "EOS_ID",
    "EQUATIONS",
    "AdditiveAttention",
    "Candidate",
    "Seq2SeqConfig",
    "Seq2SeqModel",
    "beam_search",
    "greedy",
]
