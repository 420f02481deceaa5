"""The oracle: torch.nn's documented cell formulas, one step at a time, in float64, under torch.autograd.

Slow and obviously right. Every per-step quantity is its own leaf or retained tensor, so autograd gives the
total derivatives the engine must match. Its forward is itself checked against torch.nn's modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from app.engine.series.model import SeriesModel
from app.engine.token.model import SeqModel


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


@dataclass
class Layers:
    hidden: list[list[Tensor]]  # per layer, per step h_t (retained)
    cells: list[list[Tensor]]
    gates: list[dict[str, list[Tensor]]]
    w_steps: list[list[Tensor]]  # per layer, per step its own copy of W_hh (a leaf)


def run_layers(
    sd: dict[str, Tensor], cell: str, layers: int, hidden_size: int, xs: list[Tensor], directions: int = 1
) -> Layers:
    """torch.nn's cell formulas over the inputs xs, layer by layer, every state retained for autograd. With two
    directions each layer also runs over xs last to first (`_reverse` weights); entries are in torch's order
    (l0, l0_reverse, …), each indexed by the input's step, and layer k+1 reads [forward; reverse] of layer k."""
    H = hidden_size
    inputs: list[Tensor] = xs
    out = Layers([], [], [], [])
    T = len(xs)
    for k in range(layers):
        per_direction: list[list[Tensor]] = []
        for d in range(directions):
            s = f"_l{k}" + ("_reverse" if d else "")
            W_ih, W_hh = sd[f"rnn.weight_ih{s}"], sd[f"rnn.weight_hh{s}"]
            b_ih, b_hh = sd[f"rnn.bias_ih{s}"], sd[f"rnn.bias_hh{s}"]
            h = torch.zeros(H, dtype=torch.float64)
            c = torch.zeros(H, dtype=torch.float64)
            hs: dict[int, Tensor] = {}
            cs: dict[int, Tensor] = {}
            gs: dict[str, dict[int, Tensor]] = {}
            ws: dict[int, Tensor] = {}
            for t in range(T - 1, -1, -1) if d else range(T):
                Wt = W_hh.clone().requires_grad_(True)  # step t's own copy: its grad is step t's BPTT term
                ws[t] = Wt
                gi = W_ih @ inputs[t] + b_ih
                gh = Wt @ h + b_hh
                if cell == "lstm":
                    i, f, g, o = (gi + gh).chunk(4)
                    i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
                    c = f * c + i * g
                    c.retain_grad()
                    cs[t] = c
                    h = o * c.tanh()
                    step = {"input": i, "forget": f, "candidate": g, "output": o}
                elif cell == "gru":
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
                hs[t] = h
                for name, v in step.items():
                    gs.setdefault(name, {})[t] = v
            in_order = [hs[t] for t in range(T)]
            per_direction.append(in_order)
            out.hidden.append(in_order)
            out.cells.append([cs[t] for t in range(T)] if cs else [])
            out.gates.append({name: [v[t] for t in range(T)] for name, v in gs.items()})
            out.w_steps.append([ws[t] for t in range(T)])
        inputs = per_direction[0] if directions == 1 else [torch.cat(hs_t) for hs_t in zip(*per_direction, strict=True)]
    return out


def top_output(run: Layers, directions: int) -> Tensor:
    """The top layer's output (T, D·H): [forward; reverse] at every step."""
    return torch.cat([torch.stack(hs) for hs in run.hidden[-directions:]], dim=1)


def norms(ts: list[Tensor]) -> Tensor:
    return torch.stack([t.grad.norm() if t.grad is not None else torch.zeros((), dtype=torch.float64) for t in ts])


def reference(model: SeqModel, ids: list[int], mode: str, label: int | None = None) -> Reference:
    cfg = model.config
    sd = {k: v.detach().double() for k, v in model.state_dict().items()}
    T = len(ids)
    xs = [sd["embedding.weight"][i].clone().requires_grad_(True) for i in ids]
    run = run_layers(sd, cfg.cell, cfg.num_layers, cfg.hidden_size, xs, cfg.directions)
    hidden, cells, gates, w_steps = run.hidden, run.cells, run.gates, run.w_steps

    logits = top_output(run, cfg.directions) @ sd["head.weight"].T + sd["head.bias"]
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


@dataclass
class SeriesReference:
    hidden: list[Tensor]  # per layer (T, H)
    cell_state: list[Tensor | None]
    gates: list[dict[str, Tensor]]
    predicted: Tensor  # (T, F) x̂_{t+1}, scaled
    step_loss: Tensor  # (T,), NaN at the last step
    loss: float
    grad_hidden: list[Tensor]
    grad_cell_state: list[Tensor | None]
    grad_weight_hh: list[Tensor]
    grad_input: Tensor  # (T,) ‖∂L/∂x_t‖
    grad_x: Tensor  # (T, F) ∂L/∂x_t


def reference_series(model: SeriesModel, x: Tensor, mode: str) -> SeriesReference:
    """A series model (app/engine/series/model.py) on scaled inputs x (T, F): the same cells, a linear head, squared
    errors against the next step's input, every x_t a leaf."""
    cfg = model.config
    sd = {k: v.detach().double() for k, v in model.state_dict().items()}
    T = len(x)
    xs = [x[t].double().clone().requires_grad_(True) for t in range(T)]
    run = run_layers(sd, cfg.cell, cfg.num_layers, cfg.hidden_size, xs)
    pred = torch.stack(run.hidden[-1]) @ sd["head.weight"].T + sd["head.bias"]  # (T, F)
    step_loss = torch.full((T,), float("nan"), dtype=torch.float64)
    target = x[1:].double()  # the targets are data, not leaves: ∂L/∂x_t is through the network only
    losses = ((pred[:-1] - target) ** 2).sum(1)
    step_loss[:-1] = losses.detach()
    L = losses.sum() if mode == "sum" else losses[-1] if T > 1 else pred.sum() * 0
    L.backward()
    return SeriesReference(
        hidden=[torch.stack(hs).detach() for hs in run.hidden],
        cell_state=[torch.stack(cs).detach() if cs else None for cs in run.cells],
        gates=[{n: torch.stack(v).detach() for n, v in gs.items()} for gs in run.gates],
        predicted=pred.detach(),
        step_loss=step_loss,
        loss=float(L.detach()),
        grad_hidden=[norms(hs) for hs in run.hidden],
        grad_cell_state=[norms(cs) if cs else None for cs in run.cells],
        grad_weight_hh=[norms(ws) for ws in run.w_steps],
        grad_input=norms(xs),
        grad_x=torch.stack([t.grad if t.grad is not None else torch.zeros_like(t) for t in xs]),
    )


def reference_series_classify(model: SeriesModel, x: Tensor, mode: str, label: int) -> SeriesReference:
    """A series classifier (a head of one logit per label) on scaled inputs x (T, F): the same cells, softmax at
    every step, L = −log p_t[label] at the last step (`last`) or summed over every step (`sum`), every x_t a
    leaf. `predicted` holds the probabilities (T, C)."""
    cfg = model.config
    sd = {k: v.detach().double() for k, v in model.state_dict().items()}
    T = len(x)
    xs = [x[t].double().clone().requires_grad_(True) for t in range(T)]
    run = run_layers(sd, cfg.cell, cfg.num_layers, cfg.hidden_size, xs)
    logits = torch.stack(run.hidden[-1]) @ sd["head.weight"].T + sd["head.bias"]  # (T, C)
    losses = -torch.log_softmax(logits, dim=-1)[:, label]
    L = losses.sum() if mode == "sum" else losses[-1]
    L.backward()  # type: ignore[no-untyped-call]
    return SeriesReference(
        hidden=[torch.stack(hs).detach() for hs in run.hidden],
        cell_state=[torch.stack(cs).detach() if cs else None for cs in run.cells],
        gates=[{n: torch.stack(v).detach() for n, v in gs.items()} for gs in run.gates],
        predicted=torch.softmax(logits, dim=-1).detach(),
        step_loss=losses.detach(),
        loss=float(L.detach()),
        grad_hidden=[norms(hs) for hs in run.hidden],
        grad_cell_state=[norms(cs) if cs else None for cs in run.cells],
        grad_weight_hh=[norms(ws) for ws in run.w_steps],
        grad_input=norms(xs),
        grad_x=torch.stack([t.grad if t.grad is not None else torch.zeros_like(t) for t in xs]),
    )
