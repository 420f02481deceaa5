"""trace_pixels(): the exact trace of a caption model on one picture, and caption(): beam search with the trace.

The method (G = 8 × 8 grid cells j, T words t; the equations are app.engine.caption.model.EQUATIONS):
1. Forward: the encoder (torch's convolutions) → the grid m (G, F); the decoder's start state from the grid; the
   decoder's layer by the layer code every family uses (torch's fused kernel, then every step's gates at once),
   reading <s>, y_0, …, y_{T−2} (teacher forcing: the given caption, or the model's own greedy one).
2. Attention, head, softmax, per-word losses and ∂L/∂logits for all words at once, in float64 (T × G × A values),
   as the translation models' trace does.
3. Backward through head and attention: ∂L/∂h_t (from the head and from its query), ∂L/∂c_t (from the head, as
   c_t and as the next word's c_{t−1}) and, for each grid cell, the
   share that arrives through attention, as key and as value: W_kᵀ Σ_t ∂L/∂(W_k m_j)_t + Σ_t α_tj ∂L/∂c_t.
4. BPTT of the decoder (kernels.py, float64) from ∂L/∂h_t; what reaches its start state h_{−1} (and c_{−1}) goes
   back through tanh and W_h (W_c) to every grid cell: the share through the start.
5. The same backward for each word's own loss L_t alone (`grad_grid_words`): which regions word t's loss reaches,
   through attention at word t and every earlier one, and through the start. The sum over t is the total (linear).
The encoder's convolutions are not traced: the trace stops at the grid, the encoder's output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from app.engine import kernels
from app.engine.caption.card import caption_card
from app.engine.caption.image import read_image
from app.engine.caption.model import BOS_ID, EOS_ID, IMAGE_SIZE, CaptionModel, beam_search
from app.engine.card import LoadedModel
from app.engine.errors import EmptyInput, EngineError, OverLimit, UnknownTokens, WrongModelKind
from app.engine.layers import F32, F64, I64, LayerForward, LayerTrace, layer_backward, layer_forward
from app.engine.vocab import Vocab

MAX_BEAM = 8
TargetSource = Literal["given", "greedy"]


@dataclass
class CaptionTrace:
    cell: str
    pixels: NDArray[np.uint8]  # (64, 64, 3) what the encoder read
    grid_size: int  # cells a side: cell j is the region (row, col) = divmod(j, grid_size), 64 / grid_size px a side
    words: list[str]  # what each decoder step should write: y_0 … y_{T−1}, </s> last if the caption ended
    word_ids: list[int]
    inputs: list[str]  # what each step read: <s>, y_0, …, y_{T−2}
    caption: str  # the words as text, without </s>
    finished: bool
    target_source: TargetSource  # "given" (teacher forcing) or "greedy" (the model's own caption)
    decoder: LayerTrace  # h_t, c_t (LSTM), gates, ‖∂L/∂h_t‖, ‖∂L/∂c_t‖, ‖∂L/∂W_hh term_t‖
    start: F32  # (H,) h_{−1}, the state the decoder starts from (computed from the grid)
    start_cell: F32 | None  # (H,) c_{−1}, LSTM
    attention: F64  # (T, G) α_tj: each row sums to 1
    probs: F32  # (T, V) p(y_t = ·)
    top_ids: I64  # (T, k) the k likeliest next words at each step
    top_probs: F32  # (T, k)
    step_loss: F64  # (T,) L_t = −log p(y_t)
    loss: float  # L = Σ_t L_t = −log p(caption | image)
    grad_start: float  # ‖∂L/∂h_{−1}‖
    grad_input: F64  # (T,) ‖∂L/∂E[y_{t−1}]‖, the embedding each step read
    grad_context: F64  # (T,) ‖∂L/∂c_t‖
    grad_grid: F64  # (G,) ‖∂L/∂m_j‖: everything that reaches grid cell j
    grad_grid_attention: F64  # (G,) ‖the share of ∂L/∂m_j through attention‖
    grad_grid_start: F64  # (G,) ‖the share through the start state‖
    grad_grid_words: F64  # (T, G) ‖∂L_t/∂m_j‖: word t's own loss, reaching cell j
    checkpoint: str | None = None

    @property
    def log_prob(self) -> float:
        return -self.loss


@dataclass
class Beam:
    caption: str
    score: float  # Σ log p of every written token, </s> included; not length-normalised
    finished: bool
    word_ids: list[int]


@dataclass
class Captioning:
    caption: str  # the best candidate's
    beams: list[Beam]  # every final candidate, best first
    trace: CaptionTrace  # of the given caption if one was given, else of the best candidate


def captioner(loaded: LoadedModel, checkpoint: str | None) -> tuple[CaptionModel, Vocab]:
    """The caption model and the words it writes, or WrongModelKind saying what the model does instead."""
    caption_card(loaded.card)
    model = loaded.at(checkpoint)
    if not isinstance(model, CaptionModel) or loaded.target_vocab is None:  # pragma: no cover - the family builds it
        raise WrongModelKind(f"{loaded.card.id} holds no CaptionModel")
    return model, loaded.target_vocab


def encode_caption(vocab: Vocab, text: str, limit: int) -> list[int]:
    """A given caption → its ids and </s>; UnknownTokens names a word the model cannot write, by position."""
    if not text.strip():
        raise EmptyInput("the caption is empty: give at least one word")
    enc = vocab.encode(text, what="caption")
    if enc.unknown:
        raise UnknownTokens("caption", enc.tokens, enc.unknown)
    if len(enc.ids) >= limit:
        raise OverLimit("caption", len(enc.ids) + 1, limit, "max_length")
    return [*enc.ids, EOS_ID]


def caption(
    loaded: LoadedModel,
    image: bytes,
    *,
    given: str | None = None,
    beam: int = 1,
    top_k: int = 5,
    checkpoint: str | None = None,
) -> Captioning:
    """A PNG or JPEG's bytes (BadImage naming what is wrong) → caption_pixels."""
    return caption_pixels(loaded, read_image(image), given=given, beam=beam, top_k=top_k, checkpoint=checkpoint)


def caption_pixels(
    loaded: LoadedModel,
    pixels: NDArray[np.uint8],
    *,
    given: str | None = None,
    beam: int = 1,
    top_k: int = 5,
    checkpoint: str | None = None,
) -> Captioning:
    """Beam search (width 1: greedy) on (64, 64, 3) pixels: every final candidate with its score, and the trace of
    the given caption (teacher-forced) or else of the best candidate (its loss is −score)."""
    if not 1 <= beam <= MAX_BEAM:
        raise OverLimit("beam", beam, MAX_BEAM, "beam")
    model, vocab = captioner(loaded, checkpoint)
    limit = caption_card(loaded.card).max_length
    target = None if given is None else encode_caption(vocab, given, limit)
    x = torch.as_tensor(np.ascontiguousarray(pixels, dtype=np.uint8))
    candidates = beam_search(model, x, beam, limit)
    beams = [Beam(_text(vocab, c.ids), c.score, c.finished, list(c.ids)) for c in candidates]
    ids = list(candidates[0].ids) if target is None else target
    result = trace_pixels(model, vocab, x, ids, top_k=top_k)
    result.target_source = "greedy" if target is None else "given"
    result.checkpoint = checkpoint
    return Captioning(caption=beams[0].caption, beams=beams, trace=result)


def _text(vocab: Vocab, ids: tuple[int, ...] | list[int]) -> str:
    return vocab.decode([i for i in ids if i not in (BOS_ID, EOS_ID)])


@dataclass
class _Backward:
    layer: LayerTrace
    d_input: F64  # (T, E)
    d_start: F64  # (H,)
    d_context: F64  # (T, F)
    via_attention: F64  # (G, F)
    via_start: F64  # (G, F)


@torch.no_grad()
def trace_pixels(
    model: CaptionModel, vocab: Vocab, pixels: Tensor, word_ids: list[int], *, top_k: int = 5
) -> CaptionTrace:
    """The engine itself: (64, 64, 3) pixels and the word ids the decoder is scored on (</s> last if it ended)."""
    cfg = model.config
    T, H, G = len(word_ids), cfg.hidden_size, cfg.cells
    if T == 0:
        raise EmptyInput("the caption is empty: give at least one token")
    if tuple(pixels.shape) != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise EngineError(f"a caption model reads {IMAGE_SIZE} × {IMAGE_SIZE} RGB pixels, not {tuple(pixels.shape)}")
    y = torch.as_tensor(word_ids, dtype=torch.long)
    read = torch.cat([y.new_full((1,), BOS_ID), y[:-1]])  # (T,) <s>, y_0, …, y_{T−2}

    # 1. Forward: the grid, the start state, the decoder's layer.
    grid32 = model.encode(pixels[None])[0]  # (G, F)
    start = model.start(grid32[None])
    h0, c0 = (start[0][0, 0], start[1][0, 0]) if isinstance(start, tuple) else (start[0, 0], None)
    fwd: LayerForward = layer_forward(model.decoder_side, 0, model.embedding.weight[read], h0, c0)
    m = grid32.double()  # (G, F)
    s = fwd.hidden.double()  # (T, H)

    # 2. Attention and head, all words at once, in float64.
    att = model.attention
    W_o = model.head.weight.double()  # (V, H + 2F): h_t, c_t, c_{t−1}
    F_ = cfg.features
    keys = m @ att.key.weight.double().T + att.key.bias.double()  # (G, A)
    u = (s @ att.query.weight.double().T)[:, None, :] + keys[None]  # (T, G, A)
    u.tanh_()
    v = att.energy.weight.double()[0]  # (A,)
    alpha = torch.softmax(u @ v, dim=-1)  # (T, G)
    context = alpha @ m  # (T, F)
    previous = torch.cat([context.new_zeros(1, F_), context[:-1]])  # c_{t−1}, c_{−1} = 0
    logits = torch.cat([s, context, previous], dim=1) @ W_o.T + model.head.bias.double()
    logp = torch.log_softmax(logits, dim=-1)  # (T, V)
    probs = logp.exp()
    rows = torch.arange(T)
    step_loss = -logp[rows, y]
    dlogits = probs.clone()  # ∂L/∂logits_t = p_t − onehot(y_t)
    dlogits[rows, y] -= 1.0
    slope = 1.0 - u * u  # (T, G, A)
    flat = m.flatten()  # (G·F,) cell by cell, as the start reads it
    start_h = torch.tanh(flat @ model.init_h.weight.double().T + model.init_h.bias.double())  # (H,)
    start_c = None
    if model.init_c is not None:
        start_c = torch.tanh(flat @ model.init_c.weight.double().T + model.init_c.bias.double())

    def backward(d_logits: Tensor) -> _Backward:
        """Steps 3–4 from ∂L/∂logits (T, V) (the total's, or one word's alone)."""
        ds = d_logits @ W_o[:, :H]  # (T, H) from the head
        dctx = d_logits @ W_o[:, H : H + F_]  # (T, F) as c_t
        dctx[:-1] += d_logits[1:] @ W_o[:, H + F_ :]  # and as the next word's c_{t−1}
        dalpha = dctx @ m.T  # (T, G)
        de = alpha * (dalpha - (alpha * dalpha).sum(1, keepdim=True))  # softmax backward
        dq = v * torch.einsum("tg,tga->ta", de, slope)  # (T, A)
        dk = v * torch.einsum("tg,tga->ga", de, slope)  # (G, A)
        ds = ds + dq @ att.query.weight.double()
        via = dk @ att.key.weight.double() + alpha.T @ dctx  # (G, F) as key, as value
        back = layer_backward(model.decoder_side, 0, fwd, np.ascontiguousarray(ds.numpy()), h0, c0)
        d_h0 = torch.from_numpy(back.d_h0)
        d_flat = (d_h0 * (1.0 - start_h * start_h)) @ model.init_h.weight.double()  # (G·F,)
        if model.init_c is not None and start_c is not None and back.d_c0 is not None:
            d_c0 = torch.from_numpy(back.d_c0)
            d_flat = d_flat + (d_c0 * (1.0 - start_c * start_c)) @ model.init_c.weight.double()
        return _Backward(back.trace, back.d_input, back.d_h0, dctx.numpy(), via.numpy(), d_flat.reshape(G, -1).numpy())

    total = backward(dlogits)
    per_word = np.empty((T, G))
    for t in range(T):
        one = torch.zeros_like(dlogits)
        one[t] = dlogits[t]
        b = backward(one)
        kernels.row_norms(np.ascontiguousarray(b.via_attention + b.via_start), per_word[t])

    def norms(a: F64) -> F64:
        out = np.empty(a.shape[0])
        kernels.row_norms(np.ascontiguousarray(a), out)
        return out

    probs32 = probs.float().numpy()
    k_top = min(top_k, probs32.shape[1])
    top_ids, top_probs = np.empty((T, k_top), np.int64), np.empty((T, k_top), np.float32)
    kernels.top_k(probs32, top_ids, top_probs)
    tokens = list(vocab.tokens)
    return CaptionTrace(
        cell=cfg.cell,
        pixels=pixels.numpy().astype(np.uint8),
        grid_size=cfg.grid,
        words=[tokens[i] for i in word_ids],
        word_ids=list(word_ids),
        inputs=[tokens[i] for i in read.tolist()],
        caption=_text(vocab, word_ids),
        finished=bool(word_ids[-1] == EOS_ID),
        target_source="given",
        decoder=total.layer,
        start=h0.numpy().copy(),
        start_cell=None if c0 is None else c0.numpy().copy(),
        attention=alpha.numpy(),
        probs=probs32,
        top_ids=top_ids,
        top_probs=top_probs,
        step_loss=step_loss.numpy(),
        loss=float(step_loss.sum()),
        grad_start=float(np.linalg.norm(total.d_start)),
        grad_input=norms(total.d_input),
        grad_context=norms(total.d_context),
        grad_grid=norms(total.via_attention + total.via_start),
        grad_grid_attention=norms(total.via_attention),
        grad_grid_start=norms(total.via_start),
        grad_grid_words=per_word,
    )


__all__ = ["Beam", "CaptionTrace", "Captioning", "caption", "caption_pixels", "encode_caption", "trace_pixels"]
