"""Sampling, one step at a time: the model writes, and each step's internals are known as its token is drawn."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from app.engine.errors import EngineError, WrongModelKind
from app.engine.layers import LayerForward, layer_forward
from app.engine.token.model import SeqModel


@dataclass
class Step:
    """One step of the forward: the token read, each layer's state and gates, the next-token distribution."""

    token_id: int
    layers: list[LayerForward]  # each over a single step (T = 1)
    probs: Tensor  # (V,) p(next token)
    sampled: bool  # False for prompt tokens, True for tokens the model wrote


def generate(
    model: nn.Module,
    prompt_ids: list[int],
    length: int,
    temperature: float,
    seed: int | None,
    unk_id: int | None = 0,
) -> Iterator[Step]:
    """Read the prompt, then sample `length` tokens, yielding every step as soon as it is computed.

    The same layer_forward as the trace computes each step, so the numbers are the trace's own maths.
    temperature → 0 is greedy decoding; a seed makes the sample reproducible. `unk_id` is the vocabulary's
    unknown token (Vocab.unk_id; the zoo's is 0), never written; a vocabulary without one (None) writes any token.
    """
    if not isinstance(model, SeqModel):  # the other families' web parts say what they do instead
        raise WrongModelKind("generate needs a next-token model; this one does not read text tokens")
    if model.config.kind != "next_token":
        raise WrongModelKind("generate needs a next-token model; this one is a classifier")
    if model.config.bidirectional:  # its reverse direction reads the text from its end, which sampling has not got
        raise WrongModelKind("generate needs a one-direction model; this one reads the text both ways")
    if not prompt_ids:
        raise EngineError("the prompt is empty: give at least one token")
    return _steps(model, prompt_ids, length, temperature, seed, unk_id)


# no_grad as a decorator: torch enters it around each resumption only. A `with` block around the yields would
# leave grad mode off in the worker thread that ran the first step (each step may run in another thread of the
# pool), and training in that thread later (the lab's live run) would fail.
@torch.no_grad()
def _steps(
    model: SeqModel, prompt_ids: list[int], length: int, temperature: float, seed: int | None, unk_id: int | None
) -> Iterator[Step]:
    gen = torch.Generator().manual_seed(seed if seed is not None else torch.seed())
    states: list[tuple[Tensor | None, Tensor | None]] = [(None, None)] * model.config.num_layers
    token = prompt_ids[0]
    total = len(prompt_ids) + length
    for t in range(total):
        x = model.embedding.weight[token][None]  # (1, E)
        layers = []
        for k in range(model.config.num_layers):
            fwd = layer_forward(model, k, x, *states[k])
            states[k] = fwd.final_state()
            layers.append(fwd)
            x = fwd.hidden
        logits = (x @ model.head.weight.T + model.head.bias)[0].double()
        probs = torch.softmax(logits, dim=-1)
        yield Step(token_id=token, layers=layers, probs=probs.float(), sampled=t >= len(prompt_ids))
        if t + 1 == total:
            break
        token = prompt_ids[t + 1] if t + 1 < len(prompt_ids) else _sample(logits, temperature, gen, unk_id)


def _sample(logits: Tensor, temperature: float, gen: torch.Generator, unk_id: int | None) -> int:
    """Draw the next token. Never the unknown token: it stands for what the vocabulary lacks."""
    logits = logits.clone()
    if unk_id is not None:
        logits[unk_id] = -torch.inf
    if temperature <= 1e-6:
        return int(logits.argmax())
    return int(torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=gen))
