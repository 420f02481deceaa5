"""trace_module() against the float64 oracle, and docs/api.md's example run as written."""

from __future__ import annotations

import re
import subprocess
import sys

import torch
from torch import nn

from app.engine.inspect import trace_module
from app.web.config import ROOT
from tests.engine.test_trace import STATE_TOL, assert_close_rel
from tests.reference import norms, run_layers


def test_trace_module_matches_autograd() -> None:
    torch.manual_seed(3)
    gru = nn.GRU(4, 9, num_layers=2, bidirectional=True)
    head = nn.Linear(18, 2)
    x = torch.randn(30, 1, 4)
    tr = trace_module(gru, x, head=head, loss=lambda y: y.logsumexp(-1).sum())
    sd = {f"rnn.{k}": v.detach().double() for k, v in gru.state_dict().items()}
    xs = [x[t, 0].double().clone().requires_grad_(True) for t in range(30)]
    run = run_layers(sd, "gru", 2, 9, xs, directions=2)
    top = torch.cat([torch.stack(run.hidden[2]), torch.stack(run.hidden[3])], dim=1)
    y = top @ head.weight.double().T + head.bias.double()
    y.logsumexp(-1).sum().backward()  # type: ignore[no-untyped-call]
    assert [layer.direction for layer in tr.layers] == ["forward", "reverse"] * 2
    for j, layer in enumerate(tr.layers):
        torch.testing.assert_close(torch.from_numpy(layer.hidden).double(), torch.stack(run.hidden[j]).detach(),
                                   atol=STATE_TOL, rtol=0)  # fmt: skip
        assert_close_rel(layer.grad_hidden, norms(run.hidden[j]))
        assert_close_rel(layer.grad_weight_hh, norms(run.w_steps[j]))
    assert_close_rel(tr.grad_input, norms(xs))


def test_the_api_guides_example_runs_as_written() -> None:
    readme = (ROOT / "docs" / "api.md").read_text()
    block = re.search(r"<!-- trace_module example[^>]*-->\n```python\n(.*?)```", readme, re.S)
    assert block is not None, "docs/api.md's trace_module example is missing"
    done = subprocess.run(
        [sys.executable, "-c", block.group(1)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("forward") == 2 and done.stdout.count("reverse") == 2
