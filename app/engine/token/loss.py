"""A token model's training loss: over every step for a next-token model, at the last real step for a classifier.
Which one is the token family's own business (its kinds "next_token" and "classify")."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from app.engine.token.model import SeqKind


def last_step_logits(logits: Tensor, lengths: Tensor | None) -> Tensor:
    """(B, T, C) logits → (B, C) at each row's last real step (length - 1); the last step if no lengths."""
    if lengths is None:
        return logits[:, -1]
    index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, logits.shape[-1])
    return logits.gather(1, index).squeeze(1)


def token_loss(
    kind: SeqKind, logits: Tensor, targets: Tensor, lengths: Tensor | None, every_step_weight: float = 0.0
) -> Tensor:
    """Mean cross-entropy: over every step for next-token models (targets (B, T)), at the last real step for
    classifiers (targets (B,) labels; plus, if `every_step_weight`, that weight times the mean loss of the label
    at every real step)."""
    if kind == "next_token":
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss = F.cross_entropy(last_step_logits(logits, lengths), targets)
    if every_step_weight:
        B, T, C = logits.shape
        lengths = lengths if lengths is not None else torch.full((B,), T)
        real = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).float()
        each = F.cross_entropy(logits.reshape(-1, C), targets.unsqueeze(1).expand(B, T).reshape(-1), reduction="none")
        loss = loss + every_step_weight * (each.view(B, T) * real).sum() / real.sum()
    return loss
