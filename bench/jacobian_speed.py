"""How fast is the Jacobian triangle? `python -m bench.jacobian_speed [--steps 300] [--hidden 128] [--naive-steps 20]`

Three tables, each measured in this one run (the machine may be shared: its load average is printed, and each
time is given as wall seconds and CPU seconds, time.process_time over all threads, what it would take on idle
cores):
1. app.engine.lab.jacobian.jacobian_norms on a random model of each cell (embedding 32, hidden --hidden), --steps steps,
   both norms; the baseline is one forward and backward of torch.nn's own layer with the same weights in float64
   over the same inputs (.backward() of Σ h_{T−1}: one gradient, where the triangle holds T²/2 matrices of H × H;
   the least of five runs).
2. At --naive-steps steps: the same triangle the naive way, as the tests' oracle computes it (for each s,
   torch.autograd.functional.jacobian of a torch.nn cell loop that takes h_s as its input, then
   torch.linalg.matrix_norm), against ours.
3. POST /api/models/{id}/jacobian in process (TestClient: validation, the compute scheduler, the JSON body) on the
   zoo's models with ~100-step inputs, the page's case.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch
from fastapi.testclient import TestClient
from torch import Tensor, nn

from app.engine.lab import jacobian
from app.engine.layers import RNN_CLASSES, Cell
from app.engine.token.model import ModelConfig, SeqModel
from app.web.app import create_app
from app.web.config import ROOT, Settings
from bench.common import table

CELLS: list[Cell] = ["rnn", "lstm", "gru"]
CELL_MODULES: dict[str, Callable[[int, int], nn.RNNCellBase]] = {
    "rnn": nn.RNNCell,
    "lstm": nn.LSTMCell,
    "gru": nn.GRUCell,
}


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def random_model(cell: Cell, hidden: int) -> SeqModel:
    torch.manual_seed(0)
    return SeqModel(ModelConfig(cell, "next_token", 40, 40, 32, hidden)).eval().requires_grad_(False)


def forward_backward(model: SeqModel, ids: list[int]) -> Callable[[], object]:
    """torch.nn's layer in float64, forward over the inputs and backward from Σ h_{T−1}."""
    cfg = model.config
    layer = RNN_CLASSES[cfg.cell](cfg.embed_size, cfg.hidden_size, batch_first=True, dtype=torch.float64)
    layer.load_state_dict({k: v.double() for k, v in model.rnn.state_dict().items()})
    x = model.embedding.weight[torch.tensor(ids)].double()[None]

    def run() -> None:
        inputs = x.clone().requires_grad_(True)
        out, _ = layer(inputs)
        out[0, -1].sum().backward()

    return run


def naive(model: SeqModel, ids: list[int]) -> Callable[[], object]:
    """The triangle by autograd: for each s, the Jacobian of h_{s+1…T−1} with respect to h_s (the LSTM's (h_s, c_s))."""
    cfg = model.config
    cell = CELL_MODULES[cfg.cell](cfg.embed_size, cfg.hidden_size).double()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).data = getattr(model.rnn, f"{name}_l0").detach().double().clone()
    xs = model.embedding.weight[torch.tensor(ids)].double()
    lstm = cfg.cell == "lstm"

    def steps(h: Tensor, c: Tensor | None, inputs: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        hs, cs = [], []
        for x in inputs:
            if c is not None:
                h, c = cell(x, (h, c))
                cs.append(c)
            else:
                h = cell(x, h)
            hs.append(h)
        return hs, cs

    def run() -> None:
        zero = torch.zeros(cfg.hidden_size, dtype=torch.float64)
        with torch.no_grad():
            hs, cs = steps(zero, zero.clone() if lstm else None, xs)
        H = cfg.hidden_size
        for s in range(len(ids) - 1):
            state = torch.cat([hs[s], cs[s]]) if lstm else hs[s]

            def after(state: Tensor, s: int = s) -> Tensor:
                h_s, c_s = (state[:H], state[H:]) if lstm else (state, None)
                return torch.stack(steps(h_s, c_s, xs[s + 1 :])[0])

            jac = torch.autograd.functional.jacobian(after, state, vectorize=True)  # type: ignore[no-untyped-call]
            torch.linalg.matrix_norm(jac, ord=2)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--naive-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}; load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    jacobian.warm_up()
    generator = torch.Generator().manual_seed(1)
    T, H = args.steps, args.hidden

    rows: list[list[object]] = []
    for cell in CELLS:
        model = random_model(cell, H)
        ids = torch.randint(0, 40, (T,), generator=generator).tolist()
        baseline = forward_backward(model, ids)
        base_wall = min(timed(baseline)[0] for _ in range(5))  # the least of five: torch's threads wait on others
        for norm in ("spectral", "frobenius"):
            wall, cpu = timed(lambda model=model, ids=ids, norm=norm: jacobian.jacobian_norms(model, ids, 0, norm))  # type: ignore[misc]
            rows.append(
                [cell, norm, f"{wall:.2f}", f"{cpu:.2f}", f"{base_wall * 1e3:.1f}", f"{wall / base_wall:,.0f}×"]
            )
    print(f"\n1. the triangle at T = {T}, H = {H} ({T * (T - 1) // 2} products of H × H), float64")
    print(table(["cell", "norm", "ours s", "ours CPU s", "fwd+bwd ms", "ours / fwd+bwd"], rows))

    rows = []
    n = args.naive_steps
    for cell in CELLS:
        model = random_model(cell, H)
        ids = torch.randint(0, 40, (n,), generator=generator).tolist()
        naive_wall, naive_cpu = timed(naive(model, ids))
        wall, cpu = timed(lambda model=model, ids=ids: jacobian.jacobian_norms(model, ids, 0, "spectral"))  # type: ignore[misc]
        rows.append([cell, f"{wall:.3f}", f"{cpu:.3f}", f"{naive_wall:.2f}", f"{naive_cpu:.2f}",
                     f"{naive_wall / wall:,.0f}×"])  # fmt: skip
    print(f"\n2. the spectral triangle at T = {n}, H = {H}: ours against autograd per s")
    print(table(["cell", "ours s", "ours CPU s", "autograd s", "autograd CPU s", "autograd / ours"], rows))

    rows = []
    settings = Settings(models_dir=ROOT / "models", torch_threads=args.threads)
    with TestClient(create_app(settings)) as client:
        for model_id in ("memory-rnn", "memory-lstm", "memory-gru", "charlm-rnn", "charlm-lstm", "charlm-gru"):
            card = client.get(f"/api/models/{model_id}").json()
            text = (card["examples"][0]["text"] * 20)[:100]
            for norm in ("spectral", "frobenius"):
                body = {"text": text, "norm": norm}
                client.post(f"/api/models/{model_id}/jacobian", json=body)  # its first: the model's pages warm
                wall, cpu = timed(lambda m=model_id, b=body: client.post(f"/api/models/{m}/jacobian", json=b))  # type: ignore[misc]
                response = client.post(f"/api/models/{model_id}/jacobian", json=body)
                steps = len(response.json()["tokens"])
                rows.append([model_id, card["hidden_size"], steps, norm, f"{wall:.3f}", f"{cpu:.3f}",
                             f"{len(response.content) / 1e3:.0f}"])  # fmt: skip
    print("\n3. POST /api/models/{id}/jacobian in process, the zoo's models, ~100-step inputs")
    print(table(["model", "H", "T", "norm", "s", "CPU s", "body kB"], rows))
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
