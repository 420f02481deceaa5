"""trace_module(): the server's exact trace of any torch.nn.RNN, LSTM or GRU module, in a notebook, as numpy arrays.

The module's own tensors run through the engine's layer code (app.engine.layers.stack_forward / stack_backward): the
same states, gates and BPTT gradient norms a zoo model's trace reports, for one or two directions and any number
of layers. ∂loss/∂(the top layer's output) comes from torch.autograd in float64 through the optional head and
loss; everything below it is the engine's float64 recursion.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from app.engine import kernels
from app.engine.layers import Cell, LayerTrace, LayerWeights, layer_views, layer_weights, stack_backward, stack_forward

Loss = Callable[[Tensor], Tensor]


@dataclass
class ModuleTrace:
    layers: list[LayerTrace]  # torch's order (l0, l0_reverse, l1, …), each with its direction, indexed by step
    outputs: NDArray[np.float64]  # (T, O) the head's outputs at every step, or the top layer's (T, D·H) without one
    loss: float
    grad_input: NDArray[np.float64]  # (T,) ‖∂loss/∂x_t‖


@dataclass(frozen=True)
class _Config:
    cell: Cell
    hidden_size: int


class _Stack:
    """A torch.nn recurrent module as the engine's layer code reads it (app.engine.layers.Stack)."""

    def __init__(self, module: nn.RNNBase, cell: Cell) -> None:
        self.module = module
        self.config = _Config(cell, module.hidden_size)
        self._views = layer_views(module, cell, module.input_size)

    def layer(self, k: int) -> nn.RNNBase:
        return self._views[k]

    def weights(self, k: int) -> LayerWeights:
        return LayerWeights(*(w.detach() for w in layer_weights(self.module, k)))


def _cell(module: nn.RNNBase) -> Cell:
    if isinstance(module, nn.LSTM):
        if module.proj_size:
            raise ValueError("an LSTM with proj_size cannot be traced")
        return "lstm"
    if isinstance(module, nn.GRU):
        return "gru"
    if isinstance(module, nn.RNN) and module.nonlinearity == "tanh":
        return "rnn"
    raise ValueError(f"{type(module).__name__} is not a torch.nn.RNN (tanh), LSTM or GRU")


def trace_module(
    module: nn.RNNBase, inputs: Tensor, head: nn.Module | None = None, loss: Loss | None = None
) -> ModuleTrace:
    """Trace `module` (torch.nn.RNN, LSTM or GRU; any layers, one or two directions, with biases) on one
    sequence `inputs`: (T, input_size), or a batch of one as the module reads it ((1, T, in) batch_first, else
    (T, 1, in)). `head` maps the top layer's output (T, D·H) to outputs at every step (e.g. an nn.Linear);
    `loss(outputs)` is the scalar BPTT differentiates (default: the sum of the last step's outputs). Returns
    every layer's states, gates and gradient norms per step, as the server's trace reports them."""
    cell = _cell(module)
    if not module.bias:
        raise ValueError("a module without biases (bias=False) cannot be traced")
    x = inputs.detach()
    if x.dim() == 3:
        x = x[0] if module.batch_first else x[:, 0]
    if x.dim() != 2 or x.shape[1] != module.input_size or len(x) == 0:
        raise ValueError(f"inputs must be (T, {module.input_size}) or a batch of one; got {tuple(inputs.shape)}")
    x = x.to(layer_weights(module, 0).weight_ih.dtype)
    stack = _Stack(module, cell)
    D = 2 if module.bidirectional else 1
    forwards, top = stack_forward(stack, x, module.num_layers, D)  # top: (T, D·H)
    # ∂loss/∂top by autograd in float64, through the head and the loss only.
    top64 = top.double().requires_grad_(True)
    with torch.enable_grad():
        head64 = None if head is None else copy.deepcopy(head).double()
        outputs = top64 if head64 is None else head64(top64)
        value = outputs[-1].sum() if loss is None else loss(outputs)
        (ext,) = torch.autograd.grad(value, top64)
    layers, d_x = stack_backward(stack, forwards, ext.numpy(), module.num_layers, D)
    grad_input = np.empty(len(x))
    kernels.row_norms(d_x, grad_input)
    return ModuleTrace(layers, outputs.detach().numpy(), float(value.detach()), grad_input)
