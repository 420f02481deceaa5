"""The recurrent layer pieces every family builds on: torch.nn's cells and parameter names, one layer's exact
forward (its gates recomputed for all steps at once) and its BPTT sweep given an external gradient per step, and
a stack of them in one or two directions. A family's trace (app/engine/<family>/trace.py) puts a head and a loss
on top and hands the gradient of that loss back to stack_backward.

The token family also takes the linear recurrences of app/engine/modern ("mingru", "minlstm", "s6"): their layers
are ModernLayers, not torch.nn modules, and layer_forward and layer_backward run them by their own maths (the
recurrence by its loop, BPTT by its closed-form adjoint) into the same LayerForward and LayerTrace.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from app.engine import kernels
from app.engine.errors import ModelFileError
from app.engine.modern import scan as scans
from app.engine.modern.layer import MODERN_GATES, ModernLayer, ModernStack

Cell = Literal["rnn", "lstm", "gru", "mingru", "minlstm", "s6"]

# torch.nn's gate order inside weight_ih/weight_hh, named in the module's words.
GATES: dict[str, tuple[str, ...]] = {
    "rnn": (),
    "lstm": ("input", "forget", "candidate", "output"),
    "gru": ("reset", "update", "candidate"),
    **MODERN_GATES,
}
RNN_CLASSES: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
# What ∂h_t/∂h_{t−1} does to the gradient in each cell, in the module's words: the pages say it under ‖∂L/∂h_t‖.
GRADIENT_NOTES: dict[str, str] = {
    "rnn": "for this RNN the norm falls by orders of magnitude — the vanishing gradient.",
    "lstm": "the LSTM's ‖∂L/∂c_t‖ travels back through the forget gates, nearly undamped where f ≈ 1.",
    "gru": "the GRU's update gate lets the gradient skip steps where z ≈ 1.",
    "mingru": "minGRU's is exactly diag(1 − z_t), and z_t reads x_t only (no W_hh, no tanh′): the product cannot "
    "explode, and it shrinks only at the steps where z overwrites the state.",
    "minlstm": "minLSTM's is exactly diag(f′_t), and f′_t reads x_t only (no W_hh, no tanh′): the product cannot "
    "explode, and it shrinks only where the forget gate lets go.",
    "s6": "S6's is exactly diag(exp(Δ_t A)) over its whole state (H × N numbers): a token that sets its step Δ_t "
    "near 0 lets the gradient through untouched; a large Δ_t forgets.",
}
# Every cell, in the order pages list them: torch.nn's three, then the linear recurrences of 2023–2025, which only
# the token family builds (SeqModel); the other families take RNN_CLASSES'.
CELLS: tuple[Cell, ...] = ("rnn", "lstm", "gru", "mingru", "minlstm", "s6")


MAX_LAYERS = 4  # recurrent layers a model may have (imported models; the zoo trains 1 or 2)


def suffix(j: int, directions: int) -> str:
    """torch.nn's parameter suffix of entry j in its order (l0, l0_reverse, l1, l1_reverse, …): "_l1_reverse"."""
    k, d = divmod(j, directions)
    return f"_l{k}" + ("_reverse" if d else "")


class LayerWeights(NamedTuple):
    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor
    bias_hh: Tensor


def layer_views(rnn: nn.RNNBase, cell: Cell, input_size: int) -> list[nn.RNNBase]:
    """Each layer (and direction, in torch's order) of `rnn` as a one-layer, one-direction torch.nn module whose
    parameters are `rnn`'s own tensors. A reverse direction's view runs forwards: the trace gives it the input
    reversed in time."""
    D = 2 if rnn.bidirectional else 1
    layers = []
    for j in range(rnn.num_layers * D):
        in_size = input_size if j < D else rnn.hidden_size * D  # layer k+1 reads [forward; reverse] of layer k
        one = RNN_CLASSES[cell](in_size, rnn.hidden_size, num_layers=1, batch_first=True)
        one.train(False)  # inference path: torch picks its fused oneDNN kernel
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(one, f"{name}_l0", getattr(rnn, f"{name}{suffix(j, D)}"))
        layers.append(one)
    return layers


def layer_weights(rnn: nn.RNNBase, j: int) -> LayerWeights:
    """Entry j's parameters in torch's order (l0, l0_reverse, …), torch.nn's tensors themselves
    (W_ih (G·H, in), W_hh (G·H, H))."""
    get = rnn.get_parameter
    s = suffix(j, 2 if rnn.bidirectional else 1)
    return LayerWeights(get(f"weight_ih{s}"), get(f"weight_hh{s}"), get(f"bias_ih{s}"), get(f"bias_hh{s}"))


def load_checked(module: nn.Module, state: dict[str, Tensor]) -> None:
    """Load a state dict into `module`, with an error that names the first key or shape that does not fit."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise ModelFileError(f"weights do not fit the card: missing {missing[:3]}, unexpected {extra[:3]}")
    for key, value in own.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise ModelFileError(f"{key} has shape {tuple(state[key].shape)}; the card implies {tuple(value.shape)}")
    module.load_state_dict(state)


_CELL_OF: dict[type[nn.RNNBase], Cell] = {nn.RNN: "rnn", nn.LSTM: "lstm", nn.GRU: "gru"}


def check_layers(cell: str, num_layers: int, cells: tuple[str, ...] = tuple(RNN_CLASSES)) -> None:
    """A recurrent model's shape as a family allows it: one of `cells` (by default torch.nn's three), 1 to
    MAX_LAYERS layers."""
    if cell not in cells:
        raise ValueError(f"cell must be one of {sorted(cells)}, not {cell!r}")
    if not 1 <= num_layers <= MAX_LAYERS:
        raise ValueError(f"num_layers must be 1 to {MAX_LAYERS}")


class RecurrentModel(nn.Module):
    """A family's model whose recurrent layers are `self.rnn` (torch.nn's RNN/LSTM/GRU, any layers and directions):
    what the layer code reads of it (layer(k), weights(k)) and how weights are loaded into it, written once.

    The single-layer views live in __dict__, not as submodules: they share this model's parameters, and as
    submodules they would be state-dict entries of their own."""

    rnn: nn.RNNBase | ModernStack

    def __init__(self) -> None:
        super().__init__()
        self.forget_layers()

    def forget_layers(self) -> None:
        """Drop the single-layer views: they are made again, over the current tensors, when next read (after a
        copy, a dtype change or a load has replaced the tensors they were made on)."""
        self.__dict__["_layers"] = None

    def layer(self, k: int) -> nn.RNNBase | ModernLayer:
        """Entry k (torch's order: l0, l0_reverse, l1, …) as a one-layer torch.nn module whose parameters are
        this model's own tensors (a modern cell's: its layer itself)."""
        if isinstance(self.rnn, ModernStack):
            return self.rnn.layer(k)
        layers: list[nn.RNNBase] | None = self.__dict__["_layers"]
        if layers is None:
            layers = layer_views(self.rnn, _CELL_OF[type(self.rnn)], self.rnn.input_size)
            self.__dict__["_layers"] = layers
        return layers[k]

    def weights(self, k: int) -> LayerWeights:
        """Entry k's parameters, torch.nn's tensors themselves (W_ih (G·H, in), W_hh (G·H, H))."""
        if isinstance(self.rnn, ModernStack):
            raise ValueError("a linear recurrence has no W_ih and W_hh: its layer is read whole (layer(k))")
        return layer_weights(self.rnn, k)

    def load_state_dict_checked(self, state: dict[str, Tensor]) -> None:
        """Load a state dict, with an error that names the first key or shape that does not fit."""
        load_checked(self, state)
        self.forget_layers()


LossMode = Literal["sum", "last"]
Direction = Literal["forward", "reverse"]
MAX_STEPS = 10_000

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


class StackConfig(Protocol):
    @property
    def cell(self) -> Cell: ...
    @property
    def hidden_size(self) -> int: ...


class Stack(Protocol):
    """Recurrent layers as the layer code reads them: SeqModel's, or one side of an encoder–decoder."""

    @property
    def config(self) -> StackConfig: ...
    def layer(self, k: int) -> nn.RNNBase | ModernLayer: ...
    def weights(self, k: int) -> LayerWeights: ...


@dataclass
class LayerTrace:
    hidden: F32  # (T, H) h_t
    cell_state: F32 | None  # (T, H) c_t, LSTM only
    gates: dict[str, F32]  # name → (T, H), torch.nn's order
    # (T,) ‖∂L/∂h_t‖, the total derivative through the recurrence and the layers above. S6: of its whole state
    # h_t (D × N), the numbers its recurrence carries, not of the output y_t it hands on.
    grad_hidden: F64
    grad_cell_state: F64 | None  # (T,) ‖∂L/∂c_t‖, LSTM only
    # (T,) ‖step t's term of ∂L/∂W_hh‖ = ‖δ_t‖·‖h_{t−1}‖ (an outer product's norm). A linear recurrence has no
    # W_hh (its gates read x_t only): zeros.
    grad_weight_hh: F64
    # "reverse": the layer read the input last step to first. Its arrays are still indexed by step t of the input
    # (h_t has read x_{T−1} … x_t, as torch.nn's output), and its h_{t−1} above is the state after step t+1.
    direction: Direction = "forward"

    def reversed_in_time(self, direction: Direction) -> LayerTrace:
        """This layer's arrays with their steps in the other order (a reverse direction's, computed in its own
        time, put in the input's), named with `direction`."""

        def flip(a: NDArray[np.float64]) -> NDArray[np.float64]:
            return np.ascontiguousarray(a[::-1])

        return LayerTrace(
            hidden=np.ascontiguousarray(self.hidden[::-1]),
            cell_state=None if self.cell_state is None else np.ascontiguousarray(self.cell_state[::-1]),
            gates={name: np.ascontiguousarray(g[::-1]) for name, g in self.gates.items()},
            grad_hidden=flip(self.grad_hidden),
            grad_cell_state=None if self.grad_cell_state is None else flip(self.grad_cell_state),
            grad_weight_hh=flip(self.grad_weight_hh),
            direction=direction,
        )


@dataclass
class LayerForward:
    """One layer's forward over T steps, everything the backward and the views need."""

    hidden: Tensor  # (T, H)
    act: Tensor  # (T, G·H) gate activations in torch.nn's order (the RNN: empty)
    cell_state: Tensor | None  # (T, H), LSTM
    gh_candidate: Tensor | None  # (T, H), GRU: W_hn h_{t−1} + b_hn, which the reset gate scales
    recurrence: Recurrence | None = None  # a modern cell's: what its backward and its Jacobian read

    def gates(self, cell: str) -> dict[str, F32]:
        H = self.hidden.shape[1]
        act = self.act.numpy()
        return {name: act[:, n * H : (n + 1) * H] for n, name in enumerate(GATES[cell])}

    def final_state(self) -> tuple[Tensor, Tensor | None]:
        """(h_{T−1}, c_{T−1}): where the next step starts. S6's state, which is not what it hands on, is carried
        as c_{T−1}."""
        if self.recurrence is not None and not self.recurrence.layer.state_is_hidden:
            return self.hidden[-1], self.recurrence.states[-1]
        return self.hidden[-1], None if self.cell_state is None else self.cell_state[-1]


@dataclass
class Recurrence:
    """A modern layer's forward: h_t = a_t ⊙ h_{t−1} + b_t over its inputs, from `start`."""

    layer: ModernLayer
    inputs: Tensor  # (T, in)
    start: Tensor  # (*state_shape,) h_{−1}
    states: Tensor  # (T, *state_shape)


@torch.no_grad()
def modern_forward(layer: ModernLayer, inp: Tensor, h0: Tensor | None, c0: Tensor | None) -> LayerForward:
    """A modern layer over inp (T, in) from its state (h0 for minGRU and minLSTM, c0 for S6; zeros if None), by
    the loop: its states, its output and its gates (Δ for S6)."""
    given = h0 if layer.state_is_hidden else c0
    start = layer.zero_state(inp) if given is None else given.reshape(layer.state_shape)
    a, b = layer.coefficients(inp)
    states = scans.loop(a, b, start)
    hidden = layer.readout(states, inp)
    return LayerForward(hidden, layer.gates(inp), None, None, Recurrence(layer, inp, start, states))


def modern_backward(cell: str, fwd: LayerForward, ext: F64) -> LayerBackward:
    """BPTT through a modern layer, in float64 (a float64 copy of its parameters, its states recomputed from its
    inputs): the state's gradient from outside the recurrence is the readout's vector–Jacobian product with ext;
    the total δ_t = ∂L/∂h_t follows from the closed-form adjoint δ_t = u_t + a_{t+1} ⊙ δ_{t+1}; ∂L/∂x_t is
    local in time given δ, the gradient of Σ_t δ_t·(a_t ⊙ h_{t−1} + b_t) + ext_t·y_t with the states held."""
    rec = fwd.recurrence
    assert rec is not None
    layer = copy.deepcopy(rec.layer).double().requires_grad_(False)
    x, start = rec.inputs.double(), rec.start.double()
    with torch.no_grad():
        a, b = layer.coefficients(x)
        states = scans.loop(a, b, start)
    ext_t = torch.from_numpy(np.ascontiguousarray(ext, dtype=np.float64))
    with torch.enable_grad():
        held = states.clone().requires_grad_(True)
        (upstream,) = torch.autograd.grad(layer.readout(held, x), held, ext_t)
        delta = scans.adjoint(a, upstream)
        x_leaf = x.clone().requires_grad_(True)
        a_x, b_x = layer.coefficients(x_leaf)
        previous = torch.cat([start[None], states[:-1]])
        local = (delta * (a_x * previous + b_x)).sum() + (ext_t * layer.readout(states, x_leaf)).sum()
        (d_input,) = torch.autograd.grad(local, x_leaf)
    T = x.shape[0]
    d_start = (a[0] * delta[0]).numpy()
    trace = LayerTrace(
        hidden=fwd.hidden.numpy(),
        cell_state=None,
        gates=fwd.gates(cell),
        grad_hidden=torch.linalg.vector_norm(delta.reshape(T, -1), dim=1).numpy(),
        grad_cell_state=None,
        grad_weight_hh=np.zeros(T),
    )
    if layer.state_is_hidden:
        return LayerBackward(trace, d_input.numpy(), d_start, None)
    return LayerBackward(trace, d_input.numpy(), np.zeros(layer.hidden_size), d_start.reshape(-1))


@torch.no_grad()
def layer_forward(
    model: Stack,
    k: int,
    inp: Tensor,
    h0: Tensor | None = None,
    c0: Tensor | None = None,
) -> LayerForward:
    """Layer k over inp (T, in) from the state (h0, c0) (zeros if None): torch's kernel, then all gates at once."""
    own = model.layer(k)
    if isinstance(own, ModernLayer):
        return modern_forward(own, inp, h0, c0)
    cell = model.config.cell
    H = model.config.hidden_size
    h0 = inp.new_zeros(H) if h0 is None else h0
    c0 = inp.new_zeros(H) if c0 is None else c0
    hx = (h0[None, None], c0[None, None]) if cell == "lstm" else h0[None, None]
    out, _ = own(inp[None], hx)  # torch.nn's own (fused) kernel: (1, T, H)
    return _gates(model, k, inp, out[0], h0, c0)


def _gates(model: Stack, k: int, inp: Tensor, h: Tensor, h0: Tensor, c0: Tensor) -> LayerForward:
    """Every step's gates at once, from the inputs and the hidden states torch computed (and the cell states)."""
    cell = model.config.cell
    w = model.weights(k)
    T, H = h.shape
    if cell == "rnn":
        return LayerForward(h, h.new_empty(T, 0), None, None)
    h_prev = torch.cat([h0[None], h[:-1]])  # (T, H)
    gi = torch.addmm(w.bias_ih, inp, w.weight_ih.T)  # (T, G·H)
    if cell == "lstm":
        pre = torch.addmm(gi + w.bias_hh, h_prev, w.weight_hh.T)  # (T, 4H)
        act = pre.sigmoid()  # i, f, o; the candidate g is a tanh
        act[:, 2 * H : 3 * H] = pre[:, 2 * H : 3 * H].tanh()
        c = np.empty((T, H), np.float32 if act.dtype == torch.float32 else np.float64)
        kernels.lstm_cell_forward(act.numpy(), c0.numpy(), c)
        return LayerForward(h, act, torch.from_numpy(c), None)
    gh = torch.addmm(w.bias_hh, h_prev, w.weight_hh.T)  # (T, 3H)
    act = (gi + gh).sigmoid_()  # r, z, and a placeholder for n
    gh_n = gh[:, 2 * H :]
    act[:, 2 * H :] = torch.tanh(gi[:, 2 * H :] + act[:, :H] * gh_n)
    return LayerForward(h, act, None, gh_n.contiguous())


@dataclass
class LayerBackward:
    trace: LayerTrace
    d_input: F64  # (T, in) ∂L/∂(the layer's input)_t: the layer below's ext
    d_h0: F64  # (H,) ∂L/∂h_{−1}: what reaches the state the layer started from (an encoder's last)
    d_c0: F64 | None  # (H,) ∂L/∂c_{−1}, LSTM


def layer_backward(
    model: Stack,
    k: int,
    fwd: LayerForward,
    ext: F64,
    h0: Tensor | None = None,
    c0: Tensor | None = None,
    dc_last: F64 | None = None,
    exact_input: bool = False,
) -> LayerBackward:
    """Run layer k's reverse recursion from ext (T, H), the gradient reaching each h_t from outside the
    recurrence. (h0, c0): the state the forward started from (zeros if None); dc_last: the gradient reaching
    c_{T−1} from after the sequence (LSTM; a decoder's, when this is its encoder). exact_input: ∂L/∂(input) in
    float64 (a few input numbers, whose sum over the gate rows may cancel), not one float32 product."""
    cell = model.config.cell
    if fwd.recurrence is not None:
        return modern_backward(cell, fwd, ext)
    w = model.weights(k)
    WT = np.ascontiguousarray(w.weight_hh.T.numpy())  # (H, G·H) float32 (a series model's float64)
    h = fwd.hidden.numpy()
    T, H = h.shape
    h0_ = np.zeros(H, h.dtype) if h0 is None else np.ascontiguousarray(h0.numpy(), dtype=h.dtype)
    c0_ = np.zeros(H, h.dtype) if c0 is None else np.ascontiguousarray(c0.numpy(), dtype=h.dtype)
    h_prev_norm = np.empty(T)  # ‖h_{t−1}‖: each step's W_hh term is δ_t ⊗ h_{t−1}
    h_prev_norm[0] = float(np.linalg.norm(h0_.astype(np.float64)))
    h_prev_norm[1:] = torch.linalg.vector_norm(fwd.hidden[:-1], dim=1).numpy()  # |h| ≤ 1: float32 is exact enough
    G = w.weight_hh.shape[0] // H
    dh = np.empty((T, H))
    dgi = np.empty((T, G * H))
    unit = np.empty((T, G * H), np.float32)  # dgi_t / ‖dgi_t‖
    norms = np.zeros((T, 4))  # ‖∂L/∂h_t‖, ‖∂L/∂c_t‖, ‖W_hh term_t‖, ‖dgi_t‖
    c = None if fwd.cell_state is None else fwd.cell_state.numpy()
    W_hh = w.weight_hh.double().numpy()
    d_c0: F64 | None = None
    if cell == "lstm":
        assert c is not None
        tanh_c = torch.from_numpy(c).tanh().numpy()
        dc = np.empty((T, H))
        dc_end = np.zeros(H) if dc_last is None else np.ascontiguousarray(dc_last, dtype=np.float64)
        act = fwd.act.numpy()
        kernels.lstm_backward(WT, ext, act, c, c0_, dc_end, tanh_c, h_prev_norm, dh, dc, dgi, unit, norms)
        d_h0 = W_hh.T @ dgi[0]
        d_c0 = act[0, H : 2 * H] * dc[0]  # c_0 = f_0 c_{−1} + …
    elif cell == "gru":
        assert fwd.gh_candidate is not None
        dgh = np.empty((T, G * H))
        gh_n = fwd.gh_candidate.numpy()
        act = fwd.act.numpy()
        kernels.gru_backward(WT, ext, act, gh_n, h, h0_, h_prev_norm, dh, dgh, dgi, unit, norms)
        d_h0 = W_hh.T @ dgh[0] + act[0, H : 2 * H] * dh[0]  # h_0 = (1 − z_0) n_0 + z_0 h_{−1}
    else:
        kernels.rnn_backward(WT, ext, h, h_prev_norm, dh, dgi, unit, norms)
        d_h0 = W_hh.T @ dgi[0]
    layer = LayerTrace(
        hidden=h,
        cell_state=c,
        gates=fwd.gates(cell),
        grad_hidden=norms[:, 0].copy(),
        grad_cell_state=norms[:, 1].copy() if cell == "lstm" else None,
        grad_weight_hh=norms[:, 2].copy(),
    )
    # ∂L/∂(input)_t = W_ihᵀ dgi_t = ‖dgi_t‖ · (W_ihᵀ unit_t): one float32 product, then each row's own scale.
    if exact_input or w.weight_ih.dtype == torch.float64:
        d_input = dgi @ w.weight_ih.double().numpy()  # (T, in)
    else:
        d_input = (torch.from_numpy(unit) @ w.weight_ih).double().numpy()  # (T, in)
        d_input *= norms[:, 3:4]
    return LayerBackward(layer, d_input, d_h0, d_c0)


def stack_forward(
    model: Stack,
    x: Tensor,
    num_layers: int,
    directions: int,
) -> tuple[list[LayerForward], Tensor]:
    """Every layer's forward over x (T, in), in torch's order (l0, l0_reverse, l1, …), and the top layer's
    output (T, D·H). A reverse direction is the same layer run on the input reversed in time: its LayerForward
    keeps its own time (what its backward needs); what it hands to the layer above is put back in the input's
    order. Layer k+1 reads [forward; reverse] of layer k, as torch.nn does."""
    forwards: list[LayerForward] = []
    inp = x
    for k in range(num_layers):
        outs = []
        for d in range(directions):
            j = k * directions + d
            if d == 0:
                fwd = layer_forward(model, j, inp)
                outs.append(fwd.hidden)
            else:
                fwd = layer_forward(model, j, inp.flip(0))
                outs.append(fwd.hidden.flip(0))
            forwards.append(fwd)
        inp = outs[0] if directions == 1 else torch.cat(outs, dim=1)  # (T, D·H)
    return forwards, inp


def stack_backward(
    model: Stack,
    forwards: list[LayerForward],
    ext: F64,
    num_layers: int,
    directions: int,
    exact_input: bool = False,
) -> tuple[list[LayerTrace], F64]:
    """BPTT through stack_forward's layers, top layer first, from ext (T, D·H): ∂L/∂(the top output)_t from
    outside the recurrence. Each direction takes its own H columns; a reverse direction's recursion runs in its
    own time, from the input's first step to its last. Returns every layer's trace (in the input's time, torch's
    order) and ∂L/∂x_t (T, in), the sum of both directions' shares."""
    H = model.config.hidden_size
    layers: list[LayerTrace] = [None] * len(forwards)  # type: ignore[list-item]
    for k in range(num_layers - 1, -1, -1):
        d_input: F64 | None = None
        for d in range(directions):
            j = k * directions + d
            own = ext[:, d * H : (d + 1) * H]
            exact = exact_input and k == 0
            if d == 0:
                back = layer_backward(model, j, forwards[j], np.ascontiguousarray(own), exact_input=exact)
                layers[j], share = back.trace, back.d_input
            else:
                back = layer_backward(model, j, forwards[j], np.ascontiguousarray(own[::-1]), exact_input=exact)
                layers[j], share = back.trace.reversed_in_time("reverse"), back.d_input[::-1]
            d_input = share if d_input is None else d_input + share
        assert d_input is not None
        ext = np.ascontiguousarray(d_input)
    return layers, ext
