"""trace_translation(): the exact trace of an encoder–decoder, and translate(): beam search with the trace of
its best output.

The method (J source steps, T target steps; the equations are app.engine.translation.model.EQUATIONS):
1. Forward, layer by layer with the same layer code as every other model (torch's fused kernel, then every
   step's gates at once): the encoder from zeros, the decoder from the encoder's last state, reading
   <s>, y_0, …, y_{T−2} (teacher forcing: the given target, or the model's own greedy output).
2. Attention, head, softmax, per-step losses and ∂L/∂logits for all steps at once, in float64 (T × J × A
   values: small), so that the derivative of a saturated tanh is not lost to float32's rounding.
3. Backward through head and attention at once: ∂L/∂s_t (the decoder's top layer, from the head and from its
   query) and, for each encoder step, the share that arrives through attention, as key and as value:
   via_attention_j = W_kᵀ Σ_t ∂L/∂(W_k h_j)_t + Σ_t α_tj ∂L/∂c_t.
4. BPTT of the decoder, top layer first (kernels.py, float64), from ∂L/∂s_t; what reaches its start state is
   handed to the encoder's last step (∂L/∂h_{J−1}^l, and ∂L/∂c_{J−1}^l for the LSTM).
5. BPTT of the encoder, top layer first, from via_attention (top layer) plus that hand-over.
A gradient is never rounded to zero: the recursions run in float64 and their norms are scaled (kernels.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from app.engine import kernels
from app.engine.card import LoadedModel
from app.engine.errors import EmptyInput, EngineError, OverLimit, UnknownTokens, WrongModelKind
from app.engine.layers import F32, F64, I64, LayerForward, LayerTrace, layer_backward, layer_forward
from app.engine.translation.card import translation_card
from app.engine.translation.model import BOS, BOS_ID, EOS, EOS_ID, Candidate, Seq2SeqModel, beam_search
from app.engine.vocab import Vocab

MAX_SOURCE_STEPS = 1000
DEFAULT_MAX_LENGTH = 200  # decoder steps, when the card names none
TargetSource = Literal["given", "greedy"]


@dataclass
class SideTrace:
    """One side of the encoder–decoder: what each step read and every layer's states, gates and gradients."""

    tokens: list[str]  # encoder: the source; decoder: what each step read (<s>, y_0, …, y_{T−2})
    token_ids: list[int]
    layers: list[LayerTrace]  # as a SeqModel's trace: hidden, cell_state, gates, grad_hidden, grad_cell_state, …
    grad_input: F64  # (steps,) ‖∂L/∂x_t‖, x_t the step's input embedding


@dataclass
class TranslationTrace:
    cell: str
    source_tokens: list[str]
    source_ids: list[int]
    unknown: list[int]  # source positions read as <unk> (only when allow_unknown)
    target_tokens: list[str]  # what each decoder step should write: y_0 … y_{T−1}, </s> last if the output ended
    target_ids: list[int]
    output: str  # the target as text, without </s>
    finished: bool  # the target ends with </s>
    target_source: TargetSource  # "given" (teacher forcing) or "greedy" (the model's own output)
    prefix_length: int  # target tokens forced before greedy decoding took over (0 if none)
    encoder: SideTrace
    decoder: SideTrace
    attention: F32 | None  # (T, J) α_tj; None without attention
    context: F32 | None  # (T, H) c_t
    probs: F32  # (T, V) p(y_t = ·)
    top_ids: I64  # (T, k) the k most likely tokens at each decoder step
    top_probs: F32  # (T, k)
    step_loss: F64  # (T,) −log p(y_t)
    loss: float  # L = Σ_t step_loss_t = −log p(target | source)
    via_attention: F64 | None  # (J,) ‖the part of ∂L/∂h_j (top encoder layer) that arrives through attention‖
    grad_context: F64 | None  # (T,) ‖∂L/∂c_t‖
    checkpoint: str | None = None

    @property
    def log_prob(self) -> float:
        """log p(target | source): a beam's score, recomputed."""
        return -self.loss


@dataclass
class Beam:
    output: str
    score: float  # Σ log p of every written token, </s> and any forced prefix included; not length-normalised
    finished: bool
    token_ids: list[int]


@dataclass
class Translation:
    output: str  # the best candidate's text
    beams: list[Beam]  # every final candidate, best first
    trace: TranslationTrace  # of the best candidate's output


def translator(loaded: LoadedModel, checkpoint: str | None) -> tuple[Seq2SeqModel, Vocab]:
    """The encoder–decoder and target vocabulary of a translation model, or WrongModelKind."""
    model = loaded.at(checkpoint)
    if not isinstance(model, Seq2SeqModel) or loaded.target_vocab is None:
        raise WrongModelKind(f"{loaded.card.id} is a {loaded.card.kind} model, not a translation model")
    return model, loaded.target_vocab


def encode_source(
    loaded: LoadedModel, text: str, max_steps: int = MAX_SOURCE_STEPS, allow_unknown: bool = False
) -> tuple[list[str], list[int], list[int]]:
    """(tokens, ids, unknown positions) of a source text; UnknownTokens names what the vocabulary lacks."""
    if not text.strip():
        raise EmptyInput("the source text is empty: give at least one word")
    pieces = loaded.vocab.split(text)
    if len(pieces) > max_steps:
        raise OverLimit("source", len(pieces), max_steps, "max_source_steps")
    enc = loaded.vocab.encode(text, what="source")
    if enc.unknown and not allow_unknown:
        raise UnknownTokens("source", enc.tokens, enc.unknown)
    return enc.tokens, enc.ids, enc.unknown


def encode_target(vocab: Vocab, text: str, what: str, limit: int, allow_unknown: bool = False) -> list[int]:
    """Target text → ids (no </s>), with UnknownTokens for letters the decoder cannot write (or, with
    allow_unknown, <unk> in their place: a target the decoder could never write, scored as such)."""
    if not text:
        return []
    enc = vocab.encode(text, what=what)
    if enc.unknown and not allow_unknown:
        raise UnknownTokens(what, enc.tokens, enc.unknown)
    if len(enc.ids) >= limit:
        raise OverLimit(what, len(enc.ids) + 1, limit, "max_length")
    return enc.ids


def trace_translation(
    loaded: LoadedModel,
    source: str,
    target: str | None = None,
    *,
    prefix: str | None = None,
    top_k: int = 5,
    max_length: int | None = None,
    max_source_steps: int = MAX_SOURCE_STEPS,
    checkpoint: str | None = None,
    allow_unknown: bool = False,
) -> TranslationTrace:
    """Trace a translation model on a source text: with `target`, teacher-forced on target + </s>; without,
    on its own greedy output (after the forced `prefix`, if any), at most `max_length` decoder steps."""
    model, tvocab = translator(loaded, checkpoint)
    limit = max_length or translation_card(loaded.card).max_length or DEFAULT_MAX_LENGTH
    tokens, ids, unknown = encode_source(loaded, source, max_source_steps, allow_unknown)
    if target is not None and prefix:
        raise EngineError("give a target or a prefix, not both: a target is followed to its end")
    if target is not None:
        target_ids = [*encode_target(tvocab, target, "target", limit, allow_unknown), EOS_ID]
        how: TargetSource = "given"
        forced = 0
    else:
        forced_ids = encode_target(tvocab, prefix or "", "prefix", limit, allow_unknown)
        target_ids = list(greedy_output(model, ids, limit, forced_ids).ids)
        how, forced = "greedy", len(forced_ids)
    result = trace_ids(model, tvocab, ids, target_ids, top_k=top_k, source_tokens=tokens)
    result.unknown, result.target_source, result.prefix_length, result.checkpoint = unknown, how, forced, checkpoint
    return result


def greedy_output(model: Seq2SeqModel, source_ids: list[int], max_length: int, prefix: list[int]) -> Candidate:
    return beam_search(model, source_ids, 1, max_length, prefix)[0]


def translate(
    loaded: LoadedModel,
    source: str,
    *,
    beam: int = 1,
    max_length: int | None = None,
    top_k: int = 5,
    prefix: str | None = None,
    max_source_steps: int = MAX_SOURCE_STEPS,
    checkpoint: str | None = None,
    allow_unknown: bool = False,
) -> Translation:
    """Beam search (width 1: greedy) after an optional forced prefix: every final candidate with its score,
    and the trace of the best one (teacher-forced on its output, so its loss is −score)."""
    if not 1 <= beam <= 8:
        raise OverLimit("beam", beam, 8, "beam")
    model, tvocab = translator(loaded, checkpoint)
    limit = max_length or translation_card(loaded.card).max_length or DEFAULT_MAX_LENGTH
    tokens, ids, unknown = encode_source(loaded, source, max_source_steps, allow_unknown)
    forced = encode_target(tvocab, prefix or "", "prefix", limit, allow_unknown)
    candidates = beam_search(model, ids, beam, limit, forced)
    beams = [Beam(_text(tvocab, c.ids), c.score, c.finished, list(c.ids)) for c in candidates]
    best = trace_ids(model, tvocab, ids, list(candidates[0].ids), top_k=top_k, source_tokens=tokens)
    best.unknown, best.target_source, best.prefix_length, best.checkpoint = unknown, "greedy", len(forced), checkpoint
    return Translation(output=beams[0].output, beams=beams, trace=best)


def _text(vocab: Vocab, ids: tuple[int, ...] | list[int]) -> str:
    return vocab.decode([i for i in ids if i not in (BOS_ID, EOS_ID)])


@torch.no_grad()
def trace_ids(
    model: Seq2SeqModel,
    target_vocab: Vocab,
    source_ids: list[int],
    target_ids: list[int],
    *,
    top_k: int = 5,
    source_tokens: list[str] | None = None,
) -> TranslationTrace:
    """The engine itself: source ids, and the target ids the decoder is scored on (</s> last if it ended)."""
    cfg = model.config
    J, T, H = len(source_ids), len(target_ids), cfg.hidden_size
    if J == 0:
        raise EmptyInput("the source is empty: give at least one token")
    if T == 0:
        raise EmptyInput("the target is empty: give at least one token")
    src = torch.as_tensor(source_ids, dtype=torch.long)
    tgt = torch.as_tensor(target_ids, dtype=torch.long)
    dec_in = torch.cat([tgt.new_full((1,), BOS_ID), tgt[:-1]])  # (T,) <s>, y_0, …, y_{T−2}

    # 1. Forward: the encoder from zeros, the decoder from the encoder's last state, layer by layer.
    enc: list[LayerForward] = []
    inp = model.encoder_embedding.weight[src]  # (J, E)
    for k in range(cfg.num_layers):
        enc.append(layer_forward(model.encoder_side, k, inp))
        inp = enc[k].hidden
    dec: list[LayerForward] = []
    inp = model.decoder_embedding.weight[dec_in]  # (T, E)
    for k in range(cfg.num_layers):
        h0, c0 = enc[k].final_state()
        dec.append(layer_forward(model.decoder_side, k, inp, h0, c0))
        inp = dec[k].hidden
    memory = enc[-1].hidden.double()  # (J, H) h_j, top layer
    s = dec[-1].hidden.double()  # (T, H) s_t, top layer

    # 2. Attention and head, all steps at once, in float64.
    W_o = model.head.weight.double()  # (V, H) or (V, 2H)
    att = model.attention
    alpha = context = u = None
    if att is None:
        logits = s @ W_o.T + model.head.bias.double()
    else:
        keys = memory @ att.key.weight.double().T + att.key.bias.double()  # (J, A)
        queries = s @ att.query.weight.double().T  # (T, A)
        u = (queries[:, None, :] + keys[None, :, :]).tanh_()  # (T, J, A)
        v = att.energy.weight.double()[0]  # (A,)
        alpha = torch.softmax(u @ v, dim=-1)  # (T, J)
        context = alpha @ memory  # (T, H)
        logits = torch.cat([s, context], dim=1) @ W_o.T + model.head.bias.double()
    logp = torch.log_softmax(logits, dim=-1)  # (T, V)
    probs = logp.exp()
    step_loss = -logp[torch.arange(T), tgt]
    dlogits = probs.clone()  # ∂L/∂logits_t = p_t − onehot(y_t)
    dlogits[torch.arange(T), tgt] -= 1.0

    # 3. Backward through head and attention: ∂L/∂s_t, and each encoder step's share through attention.
    ds = dlogits @ W_o[:, :H]  # (T, H) from the head
    via: Tensor | None = None
    dcontext: Tensor | None = None
    if att is not None:
        assert alpha is not None and u is not None
        dcontext = dlogits @ W_o[:, H:]  # (T, H)
        dalpha = dcontext @ memory.T  # (T, J)
        de = alpha * (dalpha - (alpha * dalpha).sum(1, keepdim=True))  # softmax backward (T, J)
        # ∂L/∂(W_q s_t + W_k h_j + b_k) = de_tj v (1 − u_tj²), summed over j (the query's) and over t (the key's):
        # 1 − u² in place, read by two batched products, never multiplied out into more (T, J, A) tensors (at
        # 100 × 100 steps those were most of the trace's time).
        slope = u.square_().neg_().add_(1.0)  # (T, J, A) 1 − u² (u is not needed again)
        dq = v * torch.bmm(de[:, None, :], slope)[:, 0, :]  # (T, A)
        dk = v * torch.bmm(de.T[:, None, :], slope.transpose(0, 1))[:, 0, :]  # (J, A)
        ds = ds + dq @ att.query.weight.double()  # the query's share
        via = dk @ att.key.weight.double() + alpha.T @ dcontext  # (J, H) as key, as value

    # 4. The decoder's BPTT; what reaches its start state is the encoder's last step's.
    ext = ds.numpy()
    dec_layers: list[LayerTrace] = [None] * cfg.num_layers  # type: ignore[list-item]
    handover: list[tuple[F64, F64 | None]] = [None] * cfg.num_layers  # type: ignore[list-item]
    for k in range(cfg.num_layers - 1, -1, -1):
        h0, c0 = enc[k].final_state()
        back = layer_backward(model.decoder_side, k, dec[k], ext, h0, c0)
        dec_layers[k], ext, handover[k] = back.trace, back.d_input, (back.d_h0, back.d_c0)
    dec_grad_input = np.empty(T)
    kernels.row_norms(ext, dec_grad_input)

    # 5. The encoder's BPTT: attention's share (top layer) and the decoder's hand-over at the last step.
    ext = np.zeros((J, H)) if via is None else via.numpy().copy()
    enc_layers: list[LayerTrace] = [None] * cfg.num_layers  # type: ignore[list-item]
    for k in range(cfg.num_layers - 1, -1, -1):
        d_h, d_c = handover[k]
        ext[-1] += d_h
        back = layer_backward(model.encoder_side, k, enc[k], ext, dc_last=d_c)
        enc_layers[k], ext = back.trace, back.d_input
    enc_grad_input = np.empty(J)
    kernels.row_norms(ext, enc_grad_input)

    via_norms = grad_context = None
    if via is not None and dcontext is not None:
        via_norms, grad_context = np.empty(J), np.empty(T)
        kernels.row_norms(via.numpy(), via_norms)
        kernels.row_norms(dcontext.numpy(), grad_context)
    probs32 = probs.float().numpy()
    k_top = min(top_k, probs32.shape[1])
    top_ids, top_probs = np.empty((T, k_top), np.int64), np.empty((T, k_top), np.float32)
    kernels.top_k(probs32, top_ids, top_probs)
    tokens = list(target_vocab.tokens)
    finished = bool(target_ids[-1] == EOS_ID)
    return TranslationTrace(
        cell=cfg.cell,
        source_tokens=list(source_tokens or []),
        source_ids=list(source_ids),
        unknown=[],
        target_tokens=[tokens[i] for i in target_ids],
        target_ids=list(target_ids),
        output=target_vocab.decode([i for i in target_ids if i not in (BOS_ID, EOS_ID)]),
        finished=finished,
        target_source="given",
        prefix_length=0,
        encoder=SideTrace(
            tokens=list(source_tokens or []), token_ids=list(source_ids), layers=enc_layers, grad_input=enc_grad_input
        ),
        decoder=SideTrace(
            tokens=[BOS, *(tokens[i] for i in target_ids[:-1])],
            token_ids=dec_in.tolist(),
            layers=dec_layers,
            grad_input=dec_grad_input,
        ),
        attention=None if alpha is None else alpha.float().numpy(),
        context=None if context is None else context.float().numpy(),
        probs=probs32,
        top_ids=top_ids,
        top_probs=top_probs,
        step_loss=step_loss.numpy(),
        loss=float(step_loss.sum()),
        via_attention=via_norms,
        grad_context=grad_context,
    )


__all__ = [
    "EOS",
    "MAX_SOURCE_STEPS",
    "Beam",
    "SideTrace",
    "Translation",
    "TranslationTrace",
    "trace_ids",
    "trace_translation",
    "translate",
]
