"""The oracle: torch.nn's documented cell formulas, one step at a time, in float64, under torch.autograd.

Slow and obviously right. Every per-step quantity is its own leaf or retained tensor, so autograd gives the
total derivatives the engine must match. Its forward is itself checked against torch.nn's modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from app.rnn.model import SeqModel


@dataclass
class Reference:
    hidden: list[Tensor]  # per layer (T, H)
    cell_state: list[Tensor | None]
    gates: list[dict[str, Tensor]]
    probs: Tensor  # (T, outputs)
    step_loss: Tensor  # (T,), NaN where no target
    loss: float
    grad_hidden: list[Tensor]  # per layer (T,)
    grad_cell_state: list[Tensor | None]
    grad_weight_hh: list[Tensor]
    grad_input: Tensor  # (T,)
    label: int | None


def reference(model: SeqModel, ids: list[int], mode: str, label: int | None = None) -> Reference:
    cfg = model.config
    sd = {k: v.detach().double() for k, v in model.state_dict().items()}
    T, H = len(ids), cfg.hidden_size
    xs = [sd["embedding.weight"][i].clone().requires_grad_(True) for i in ids]
    inputs: list[Tensor] = xs
    hidden: list[list[Tensor]] = []
    cells: list[list[Tensor]] = []
    gates: list[dict[str, list[Tensor]]] = []
    w_steps: list[list[Tensor]] = []
    for k in range(cfg.num_layers):
        W_ih, W_hh = sd[f"rnn.weight_ih_l{k}"], sd[f"rnn.weight_hh_l{k}"]
        b_ih, b_hh = sd[f"rnn.bias_ih_l{k}"], sd[f"rnn.bias_hh_l{k}"]
        h = torch.zeros(H, dtype=torch.float64)
        c = torch.zeros(H, dtype=torch.float64)
        hs: list[Tensor] = []
        cs: list[Tensor] = []
        gs: dict[str, list[Tensor]] = {}
        ws: list[Tensor] = []
        for t in range(T):
            Wt = W_hh.clone().requires_grad_(True)  # step t's own copy: its grad is step t's BPTT term
            ws.append(Wt)
            gi = W_ih @ inputs[t] + b_ih
            gh = Wt @ h + b_hh
            if cfg.cell == "lstm":
                i, f, g, o = (gi + gh).chunk(4)
                i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
                c = f * c + i * g
                c.retain_grad()
                cs.append(c)
                h = o * c.tanh()
                step = {"input": i, "forget": f, "candidate": g, "output": o}
            elif cfg.cell == "gru":
                ir, iz, in_ = gi.chunk(3)
                hr, hz, hn = gh.chunk(3)
                r, z = (ir + hr).sigmoid(), (iz + hz).sigmoid()
                n = (in_ + r * hn).tanh()
                h = (1 - z) * n + z * h
                step = {"reset": r, "update": z, "candidate": n}
            else:
                h = (gi + gh).tanh()
                step = {}
            h.retain_grad()
            hs.append(h)
            for name, v in step.items():
                gs.setdefault(name, []).append(v)
        hidden.append(hs)
        cells.append(cs)
        gates.append(gs)
        w_steps.append(ws)
        inputs = hs

    logits = torch.stack(hidden[-1]) @ sd["head.weight"].T + sd["head.bias"]
    logp = torch.log_softmax(logits, dim=-1)
    if cfg.kind == "next_token":
        step_loss = torch.full((T,), float("nan"), dtype=torch.float64)
        targets = torch.tensor(ids[1:])
        losses = -logp[:-1].gather(1, targets[:, None])[:, 0]
        step_loss[:-1] = losses.detach()
        L = losses.sum() if mode == "sum" else losses[-1] if T > 1 else logp.sum() * 0
        label_id = None
    else:
        label_id = int(logp[-1].argmax()) if label is None else label
        losses = -logp[:, label_id]
        step_loss = losses.detach().clone()
        L = losses.sum() if mode == "sum" else losses[-1]
    L.backward()  # type: ignore[no-untyped-call]

    def norms(ts: list[Tensor]) -> Tensor:
        return torch.stack([t.grad.norm() if t.grad is not None else torch.zeros((), dtype=torch.float64) for t in ts])

    return Reference(
        hidden=[torch.stack(hs).detach() for hs in hidden],
        cell_state=[torch.stack(cs).detach() if cs else None for cs in cells],
        gates=[{n: torch.stack(v).detach() for n, v in gs.items()} for gs in gates],
        probs=logp.exp().detach(),
        step_loss=step_loss,
        loss=float(L.detach()),
        grad_hidden=[norms(hs) for hs in hidden],
        grad_cell_state=[norms(cs) if cs else None for cs in cells],
        grad_weight_hh=[norms(ws) for ws in w_steps],
        grad_input=norms(xs),
        label=label_id,
    )
