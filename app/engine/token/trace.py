"""A token model's trace(): one exact forward pass and BPTT sweep that records every internal of every time step.

The method, in the order it runs (T steps, hidden size H, G gate rows):
1. The forward: each layer runs torch.nn's own fused kernel once over the whole input (no autograd).
2. Every step's gates are recomputed at once from all h_{t−1} in one matrix product (T, G·H); the LSTM cell
   state follows from c_t = f_t c_{t−1} + i_t g_t, a compiled element-wise scan.
3. The head, softmax, top-k, each step's loss and ∂loss/∂logits: all steps at once.
4. BPTT: the reverse recursion (one W_hhᵀ matrix-vector product per step) compiled in kernels.py, in float64;
   everything else (∂L/∂x_t, the per-step W_hh gradient terms, norms) is computed for all steps at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from app.engine import kernels
from app.engine.card import LoadedModel
from app.engine.errors import EmptyInput, InputTooLong, UnknownLabel, WrongModelKind
from app.engine.layers import (
    F32,
    F64,
    I64,
    MAX_STEPS,
    LayerTrace,
    LossMode,
    stack_backward,
    stack_forward,
)
from app.engine.token.card import seq_kind, token_card, token_model
from app.engine.token.model import SeqModel
from app.engine.vocab import Encoded

LabelSource = Literal["given", "input", "predicted"]


@dataclass
class Trace:
    cell: str
    kind: str
    token_ids: list[int]
    tokens: list[str]
    unknown: list[int]
    layers: list[LayerTrace]
    probs: F32  # (T, outputs): next-token or class probabilities at every step
    top_ids: I64  # (T, k) next-token models: the k most likely next tokens; classifiers: (T, 0)
    top_probs: F32  # (T, k)
    step_loss: F64  # (T,) each step's own loss; NaN where a step has no target
    loss: float  # L, the loss that BPTT differentiates
    loss_mode: LossMode
    label: int | None  # classifiers: the label L is measured against
    # where that label came from: the request ("given"), the input itself ("input", see ModelCard.target) or the
    # model's own answer at the last step ("predicted")
    label_source: LabelSource | None
    grad_input: F64  # (T,) ‖∂L/∂x_t‖, x_t the step's input embedding
    checkpoint: str | None = None

    @property
    def steps(self) -> int:
        return len(self.token_ids)


def input_target(rule: str, tokens: Sequence[str], labels: Sequence[str]) -> tuple[int | None, LabelSource]:
    """The label an input carries by the card's rule, if any: under "first_token", the class its first token names.
    An input that names none (or a card without the rule) is scored against the model's own answer."""
    if rule == "first_token" and tokens and tokens[0] in labels:
        return list(labels).index(tokens[0]), "input"
    return None, "predicted"


def trace(
    loaded: LoadedModel,
    inputs: str | Sequence[int],
    *,
    loss: LossMode | None = None,
    label: str | int | None = None,
    checkpoint: str | None = None,
    top_k: int = 5,
    max_steps: int = MAX_STEPS,
) -> Trace:
    """Trace a token model of the zoo on text (or token ids): every state, gate, prediction, loss and gradient
    norm. The other families have their own traces (app/engine/<family>/trace.py)."""
    block = token_card(loaded.card)  # WrongModelKind, saying what it does, for a model of another family
    classify = seq_kind(loaded.card.kind) == "classify"
    encoded: Encoded = (
        loaded.vocab.encode(inputs, max_steps) if isinstance(inputs, str) else loaded.vocab.from_ids(inputs)
    )
    label_id: int | None = None
    source: LabelSource | None = None
    labels = block.labels or []
    if label is None and classify:
        label_id, source = input_target(block.target, encoded.tokens, labels)
    elif label is not None:
        source = "given"
        if not classify:
            raise WrongModelKind("label applies to classifiers only; this model predicts the next token")
        if isinstance(label, str):
            if label not in labels:
                raise UnknownLabel(f"label {label!r} is not one of {labels}")
            label_id = labels.index(label)
        elif not 0 <= label < len(labels):
            raise UnknownLabel(f"label index {label} is out of range: the labels are {labels}")
        else:
            label_id = label
    model = token_model(loaded, checkpoint)
    result = trace_ids(
        model, encoded.ids, loss=loss, label=label_id, top_k=top_k, max_steps=max_steps,
    )  # fmt: skip
    result.tokens = encoded.tokens
    if source is not None:
        result.label_source = source
    result.unknown = encoded.unknown
    result.checkpoint = checkpoint
    return result


@torch.no_grad()
def trace_ids(
    model: SeqModel,
    ids: Sequence[int],
    *,
    loss: LossMode | None = None,
    label: int | None = None,
    top_k: int = 5,
    max_steps: int = MAX_STEPS,
) -> Trace:
    """The engine itself, on token ids."""
    cfg = model.config
    T = len(ids)
    if T == 0:
        raise EmptyInput("the input is empty: give at least one token")
    if T > max_steps:
        raise InputTooLong(T, max_steps)
    mode: LossMode = loss or ("sum" if cfg.kind == "next_token" else "last")
    ids_t = torch.as_tensor(list(ids), dtype=torch.long)
    if int(ids_t.min()) < 0 or int(ids_t.max()) >= cfg.vocab_size:
        raise ValueError(f"token ids must lie in [0, {cfg.vocab_size})")

    # 1–2. Forward, layer by layer (each direction), and every step's gates at once.
    x = model.embedding.weight[ids_t]  # (T, E)
    forwards, top = stack_forward(model, x, cfg.num_layers, cfg.directions)  # top: (T, D·H)

    # 3. Head, probabilities, per-step losses and ∂L/∂logits for all steps at once.
    logits = top @ model.head.weight.T + model.head.bias  # (T, outputs)
    logp = torch.log_softmax(logits.double(), dim=-1)  # float64: a loss of 1e-9 stays visible
    probs = logp.exp()
    probs32 = probs.float()
    # weight[t] = how much step t's loss counts in L.
    weight = torch.zeros(T, dtype=torch.float64)
    if cfg.kind == "next_token":
        step_loss = torch.full((T,), float("nan"), dtype=torch.float64)
        targets = torch.cat([ids_t[1:], ids_t.new_zeros(1)])  # the target of step t is token t+1
        if T > 1:
            step_loss[:-1] = -logp[:-1].gather(1, targets[:-1, None])[:, 0]
            if mode == "sum":
                weight[:-1] = 1.0  # every step but the last, which has no target
            else:
                weight[-2] = 1.0  # the last step that has a target
        label_id = None
        k = min(top_k, cfg.num_outputs)
        top_ids_np, top_probs_np = np.empty((T, k), np.int64), np.empty((T, k), np.float32)
        kernels.top_k(probs32.numpy(), top_ids_np, top_probs_np)
        top_ids, top_probs = torch.from_numpy(top_ids_np), torch.from_numpy(top_probs_np)
    else:
        label_id = int(probs[-1].argmax()) if label is None else label
        targets = torch.full((T,), label_id, dtype=torch.long)
        step_loss = -logp[:, label_id].clone()
        weight[-1 if mode == "last" else 0 :] = 1.0
        top_ids = torch.zeros((T, 0), dtype=torch.long)
        top_probs = torch.zeros((T, 0))
    dlogits = probs * weight[:, None]  # ∂L/∂logits = w_t (p_t − onehot(target_t))
    dlogits[torch.arange(T), targets] -= weight
    total = float((step_loss.nan_to_num() * weight).sum())
    ext = (dlogits @ model.head.weight.double()).numpy()  # (T, D·H) ∂L/∂h_t from the head

    # 4. BPTT, top layer first; each layer's ∂L/∂(its input) is the external gradient of the layer below.
    layers, ext = stack_backward(model, forwards, ext, cfg.num_layers, cfg.directions)
    grad_input = np.empty(T)
    kernels.row_norms(ext, grad_input)

    return Trace(
        cell=cfg.cell,
        kind=cfg.kind,
        token_ids=ids_t.tolist(),
        tokens=[],
        unknown=[],
        layers=layers,
        probs=probs32.numpy(),
        top_ids=top_ids.numpy(),
        top_probs=top_probs.numpy(),
        step_loss=step_loss.numpy(),
        loss=total,
        loss_mode=mode,
        label=label_id,
        label_source=None if label_id is None else "given" if label is not None else "predicted",
        grad_input=grad_input,
    )
