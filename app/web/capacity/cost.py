"""What a computation costs, in estimated CPU seconds of one compute slot (one torch thread): how the compute line
tells expensive work (at least expensive_seconds, which takes one of max_expensive slots) from small work.

A count of time steps cannot say it: a 299-character Jacobian of a hidden-128 LSTM is 1,986 "steps" by the old
T²/45 rule and 11 s of CPU, while a 3,000-character trace of the same model is 0.2 s. Each kind of computation has
its own formula from the model's size (hidden size, layers, directions, gates, vocabulary) and the request's steps:

- a trace runs every step forward and back and writes every state and gate: T · (per step + MACs + values);
- a Jacobian multiplies T²/2 products of H × H matrices (and takes a norm of each): T²/2 · H³, plus a trace;
- a generation reads its prompt and samples one token at a time (a Python loop around a one-step forward), then
  traces it all; a series forecast reads its given values at once and predicts one step at a time;
- a translation's decoder may run beam × max_length steps (the bound, since nothing says where it stops);
- a diff reads two inputs: two traces' worth (an upper bound: it has no backward pass, and measured half that);
- the lab's gradient knobs run T steps of a random H × H recurrence, forward and back.

The constants below were fitted on this machine (2 cores, torch_threads 1) from the CPU seconds of real requests,
measured with `PYTHONPATH=. .venv/bin/python -m bench.admission_cost --calibrate` (it prints estimate beside
measurement: 0.8×–2.2× of it for each endpoint's worst request, 0.7×–1.2× near expensive_seconds; the table is in
bench/admission_cost.txt). So small work is at most ~0.07 s of CPU, and a visitor waits for at most one such
computation: the other slot, or the next, is theirs (app.web.capacity.compute).
"""

from __future__ import annotations

from app.engine.card import LoadedModel, ModelCard
from app.engine.family import family_of
from app.wire.frames import step_values

# A trace, per time step: fixed work (Python, the step's tensors), per multiply-add of the step, and per value
# written (states, cell states, gates: read back, rounded and written as JSON). Fitted on charlm-lstm (63 µs a
# step at T = 3,000, 87 µs at T = 10,000: the latter is used), charlm-rnn (2 layers, 35 µs at T = 3,000) and
# alphabet-rnn (7 µs); sunspots-lstm (a series) took 27 µs a step at T = 10,000, estimated 22 µs.
TRACE_STEP = 9e-6
TRACE_MAC = 0.4e-9
TRACE_VALUE = 60e-9
# The Jacobian's products and norms, per H³ of each of its T²/2 pairs of steps, per cell: charlm-gru at T = 299
# took 7.3 s, charlm-rnn 6.0 s (H = 128). The LSTM's step is its whole state (h_s, c_s) since the lab's lesson fix,
# which doubles its products' work: charlm-lstm at T = 300 took 22 s of CPU (bench.jacobian_speed; 11.2 s when c_s
# was held).
JACOBIAN_PAIR_H3 = {"rnn": 0.7e-10, "gru": 0.85e-10, "lstm": 2.3e-10}
# A linear recurrence's triangle (minGRU, minLSTM, S6) is diagonal: per pair of steps a few operations on each of
# its state's numbers (S6: H × N), not an H × H product; taken as H³ × this, generous at the zoo's H = 64.
JACOBIAN_PAIR_H3_DIAGONAL = 0.2e-10
# A generation reads its prompt and samples its text one step at a time (beside the trace of it all): per step,
# charlm-lstm 340 µs (prompt 8,000 + length 2,000: 4.2 s), melody-lstm 440 µs, alphabet-rnn 160 µs.
GENERATE_STEP = 150e-6
GENERATE_MAC = 2.3e-9
# A forecast reads the given values in one pass (a trace's cost) and predicts one step at a time: sunspots-lstm
# 290 µs a predicted step (100 given + length 1,899: 0.62 s; 8,000 + 2,000: 1.1 s).
FORECAST_STEP = 300e-6
# The lab's gradient knobs, per step: 12 µs and 0.75 ns a multiply-add of the gates' H × H products (lstm T = 1,000:
# H = 64 took 25 ms, H = 256 took 195 ms).
KNOBS_STEP = 12e-6
KNOBS_MAC = 0.75e-9
# Gate rows a step computes (its multiply-adds: each over its input and its state). minGRU's two and minLSTM's three
# rows read x_t only (counted as if over its state too: generous); S6's input map, Δ, B and C are about three.
GATES = {"rnn": 1, "gru": 3, "lstm": 4, "mingru": 2, "minlstm": 3, "s6": 3}


def step_macs(card: ModelCard, outputs: int) -> int:
    """Multiply-adds of one time step: every layer entry's gates over its input and its state, and the head."""
    gates, hidden = GATES[card.cell], card.hidden_size
    macs = 0
    for layer in range(card.num_layers):
        inputs = family_of(card.kind).input_size(card) if layer == 0 else hidden * card.directions
        macs += card.directions * gates * hidden * (inputs + hidden)
    return macs + hidden * card.directions * outputs


def outputs_of(loaded: LoadedModel) -> int:
    return family_of(loaded.card.kind).head_size(loaded.card)


def trace_seconds(loaded: LoadedModel, steps: int) -> float:
    card = loaded.card
    per_step = TRACE_STEP + TRACE_MAC * step_macs(card, outputs_of(loaded)) + TRACE_VALUE * step_values(card)
    return steps * per_step


def jacobian_seconds(loaded: LoadedModel, steps: int) -> float:
    card = loaded.card
    pairs = steps * (steps + 1) / 2
    per_pair = JACOBIAN_PAIR_H3.get(card.cell, JACOBIAN_PAIR_H3_DIAGONAL)
    return pairs * card.hidden_size**3 * per_pair + trace_seconds(loaded, steps)


def generate_seconds(loaded: LoadedModel, given: int, length: int) -> float:
    """Reading `given` prompt steps and sampling `length`, one at a time, then tracing all of them."""
    stepped = (given + length) * (GENERATE_STEP + GENERATE_MAC * step_macs(loaded.card, outputs_of(loaded)))
    return stepped + trace_seconds(loaded, given + length)


def forecast_seconds(loaded: LoadedModel, given: int, length: int) -> float:
    """A series model's free-running forecast: the given values at once, `length` predictions one at a time, then
    the trace of all of them."""
    return length * FORECAST_STEP + 2 * trace_seconds(loaded, given + length)


def translate_seconds(loaded: LoadedModel, steps: int) -> float:
    """The encoder over the source and up to beam × max_length decoder steps (translation_steps, in
    app/web/families/translation.py): as many steps of a trace (an overestimate: numbers-lstm-attention's worst,
    270 source words, beam 8 and max_length 400, took 0.08 s, estimated 0.24 s; its beams stop at EOS)."""
    return trace_seconds(loaded, steps)


def diff_seconds(loaded: LoadedModel, steps: int) -> float:
    return 2 * trace_seconds(loaded, steps)


def knobs_seconds(cell: str, steps: int, hidden: int) -> float:
    return steps * (KNOBS_STEP + KNOBS_MAC * GATES[cell] * hidden * hidden)
