"""How fast do the gradient knobs answer? `python -m bench.knobs_speed [--steps 200] [--hidden 128]`

For each cell, in one process on one thread, interleaved: the knobs' whole computation (app.engine.lab.knobs.gradients:
weights set, forward, the reverse recursion with its per-step norms, the bound), for a slider move (the seed's
draw cached) and for a new seed (its blocks' eigenvalues computed); the baseline is torch.nn's own layer with the
same weights in float64, forward over the T inputs and .backward() of the same loss w·h_{T−1} (which gives the
parameters' gradients but not one ‖∂L/∂h_t‖). "endpoint" is POST /api/lab/gradients in process (TestClient: the
validation, the compute scheduler's thread, the JSON body; no socket). "knobs CPU" is the slider case's CPU time
(time.process_time), what its wall time would be on an idle core when other processes share the machine. The
page's budget is 100 ms from knob to redrawn plot.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from fastapi.testclient import TestClient

from app.engine.lab import knobs
from app.engine.layers import RNN_CLASSES, Cell
from app.web.app import create_app
from app.web.config import Settings
from bench.common import interleaved, table

CELLS: list[Cell] = ["rnn", "lstm", "gru"]


def torch_layer(cell: Cell, hidden: int, radius: float) -> tuple[torch.nn.RNNBase, knobs.KnobLayer]:
    layer = knobs.knob_layer(cell, hidden, radius, 1.0)
    module = RNN_CLASSES[cell](knobs.INPUT_SIZE, hidden, batch_first=True, dtype=torch.float64)
    module.load_state_dict(
        {"weight_ih_l0": layer.weight_ih, "weight_hh_l0": layer.weight_hh, "bias_ih_l0": layer.bias,
         "bias_hh_l0": torch.zeros_like(layer.bias)}
    )  # fmt: skip
    return module, layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    T, H = args.steps, args.hidden
    x = knobs.knob_inputs(T, 0)[None]
    fresh_seeds = itertools.count(1000)
    rows = []
    client = TestClient(create_app(Settings(torch_threads=1)))
    client.__enter__()
    for cell in CELLS:
        module, layer = torch_layer(cell, H, 1.0)

        def baseline(module: torch.nn.RNNBase = module, layer: knobs.KnobLayer = layer) -> None:
            module.zero_grad(set_to_none=True)
            out, _ = module(x)
            (out[0, -1] @ layer.readout).backward()

        def slider(cell: Cell = cell) -> None:
            knobs.gradients(cell, T, H, 1.1, "tanh", 1.0, None, 0)

        def new_seed(cell: Cell = cell) -> None:
            knobs.gradients(cell, T, H, 1.1, "tanh", 1.0, None, next(fresh_seeds))

        def endpoint(cell: Cell = cell) -> None:
            body = {"cell": cell, "steps": T, "hidden_size": H, "radius": 1.1, "forget_bias": 1.0}
            assert client.post("/api/lab/gradients", json=body).status_code == 200

        t_base, t_slider, t_seed, t_end = interleaved([baseline, slider, new_seed, endpoint], args.repeats)
        start = time.process_time()
        for _ in range(args.repeats):
            slider()
        cpu = (time.process_time() - start) / args.repeats
        rows.append([cell, f"{t_base * 1e3:.2f}", f"{t_slider * 1e3:.2f}", f"{t_slider / t_base:.2f}×",
                     f"{cpu * 1e3:.2f}", f"{t_seed * 1e3:.1f}", f"{t_end * 1e3:.2f}"])  # fmt: skip
    client.__exit__(None, None, None)
    print(f"T = {T}, H = {H}, float64, 1 thread; median of {args.repeats} interleaved runs (ms)")
    headers = ["cell", "torch.nn fwd+bwd", "knobs (slider)", "knobs ÷ torch", "knobs CPU", "knobs (new seed)",
               "endpoint"]  # fmt: skip
    print(table(headers, rows))


if __name__ == "__main__":
    main()
