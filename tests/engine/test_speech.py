"""The speech family's engine (app/engine/speech/): its trace against torch.nn (states), torch's CTC loss and float64
autograd (the loss, ∂L/∂logits, every layer's ‖∂L/∂h_t‖), the trellis and the alignment against every path of a
small case enumerated, the beam search, and its card."""

from __future__ import annotations

import io
import itertools
import json
import math
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from torch import Tensor
from torch.nn import functional as F

from app.engine.card import ModelCard, card_text, save_model
from app.engine.errors import EmptyInput, ModelFileError, OverLimit, UnknownTokens, WrongModelKind
from app.engine.family import card_from_json, family_of, load_model
from app.engine.layers import GATES
from app.engine.speech.audio import N_MELS
from app.engine.speech.card import BLANK, SpeechCard, config
from app.engine.speech.model import SpeechConfig, SpeechModel
from app.engine.speech.trace import Unalignable, beam_search, collapse, trace, trace_frames, trellis
from tests.engine.test_trace import CELLS, STATE_TOL, assert_close_rel
from tests.reference import norms, run_layers, top_output

ALPHABET = "abcd"
MODELS = Path(__file__).resolve().parents[2] / "models"


def make_model(cell: str, directions: int, layers: int, seed: int, hidden: int = 10) -> SpeechModel:
    torch.manual_seed(seed)
    cfg = SpeechConfig(cell, bands=6, stack=2, hidden_size=hidden, classes=1 + len(ALPHABET),  # type: ignore[arg-type]
                       num_layers=layers, bidirectional=directions == 2)  # fmt: skip
    model = SpeechModel(cfg)
    for p in model.parameters():
        p.data.mul_(1.5)  # gates that saturate now and then, as in a trained model
    return model.eval()


def frames(T: int, seed: int, bands: int = 6) -> Tensor:
    return torch.randn(T, bands, generator=torch.Generator().manual_seed(seed)) * 3.0 - 5.0  # log-mel-like values


def ctc(log_probs: Tensor, labels: list[int]) -> Tensor:
    """torch's CTC loss of one sequence, summed (not divided by the target's length)."""
    T = log_probs.shape[0]
    return F.ctc_loss(log_probs[:, None], torch.tensor([labels], dtype=torch.long), torch.tensor([T]),
                      torch.tensor([len(labels)]), blank=0, reduction="sum")  # fmt: skip


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("directions", "layers"), [(1, 1), (1, 2), (2, 1), (2, 2)])
def test_the_trace_matches_torch_nn_and_float64_autograd(cell: str, directions: int, layers: int) -> None:
    model = make_model(cell, directions, layers, seed=layers * 7 + directions + len(cell))
    x_frames = frames(46, seed=layers + directions)  # 23 steps of 2 frames
    labels = [1, 2, 2, 4, 3]
    tr = trace_frames(model, x_frames, labels, ALPHABET)

    # states: the top layer is torch.nn's own module output; every entry's states and gates the oracle's
    x = model.steps(x_frames)
    with torch.no_grad():
        out, _ = model.rnn(x[None])
    top = np.concatenate([layer.hidden for layer in tr.layers[-directions:]], axis=1)
    np.testing.assert_allclose(top, out[0].numpy(), atol=STATE_TOL)

    sd = {k: v.detach().double() for k, v in model.state_dict().items()}
    xs = [x[t].double().clone().requires_grad_(True) for t in range(len(x))]
    run = run_layers(sd, cell, layers, model.config.hidden_size, xs, directions)
    logits = top_output(run, directions) @ sd["head.weight"].T + sd["head.bias"]  # (T', C)
    logits.retain_grad()
    loss = ctc(torch.log_softmax(logits, dim=-1), labels)
    loss.backward()  # type: ignore[no-untyped-call]
    assert logits.grad is not None

    assert [layer.direction for layer in tr.layers] == ["forward", "reverse"][:directions] * layers
    for j, layer in enumerate(tr.layers):
        np.testing.assert_allclose(layer.hidden, torch.stack(run.hidden[j]).detach().numpy(), atol=STATE_TOL)
        assert list(layer.gates) == list(GATES[cell])
        for name, values in layer.gates.items():
            ref = torch.stack(run.gates[j][name]).detach().numpy()
            np.testing.assert_allclose(values, ref, atol=STATE_TOL, err_msg=f"entry {j} {name}")
        assert_close_rel(layer.grad_hidden, norms(run.hidden[j]))
        assert_close_rel(layer.grad_weight_hh, norms(run.w_steps[j]))
        if cell == "lstm":
            assert layer.grad_cell_state is not None
            assert_close_rel(layer.grad_cell_state, norms(run.cells[j]))
    assert tr.loss == pytest.approx(loss.item(), rel=1e-5)
    np.testing.assert_allclose(tr.grad_logits, logits.grad.numpy(), atol=1e-5)
    assert_close_rel(tr.grad_input, norms(xs))


def test_a_step_is_stack_frames_side_by_side_each_bands_clip_mean_removed_and_scaled() -> None:
    model = make_model("gru", 1, 1, seed=0)  # stack 2, scale 0.25
    f = frames(7, seed=1).numpy().astype(np.float64)
    centred = f - f.mean(axis=0)  # the mean of all 7 frames, the one left over included
    expected = [np.concatenate([centred[2 * t], centred[2 * t + 1]]) * 0.25 for t in range(3)]
    np.testing.assert_allclose(model.steps(torch.from_numpy(f).float()).numpy(), np.stack(expected), atol=1e-6)


@pytest.mark.parametrize("labels", [[1, 2, 3], [2, 2], [4, 4, 4, 1], [3]])
def test_the_loss_and_its_gradient_equal_torch_ctc_on_the_same_posteriors(labels: list[int]) -> None:
    """On the trace's own float64 posteriors the loss and ∂L/∂logits are torch's to rounding: the trellis is exact,
    whatever the float32 forward before it."""
    model = make_model("gru", 2, 2, seed=len(labels))
    tr = trace_frames(model, frames(30, seed=len(labels)), labels, ALPHABET)
    logits = torch.from_numpy(tr.log_probs).clone().requires_grad_(True)  # log y: softmax(log y) = y
    loss = ctc(torch.log_softmax(logits, dim=-1), labels)
    loss.backward()  # type: ignore[no-untyped-call]
    assert logits.grad is not None
    assert tr.loss == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(tr.grad_logits, logits.grad.numpy(), atol=1e-12)


def test_the_trellis_total_at_every_step_is_the_transcripts_probability() -> None:
    model = make_model("lstm", 2, 1, seed=3)
    tr = trace_frames(model, frames(40, seed=4), [1, 3, 3, 2], ALPHABET)
    total = np.logaddexp.reduce(tr.trellis.log_alpha + tr.trellis.log_beta, axis=1)  # (T',) log Σ_s α_t(s) β_t(s)
    np.testing.assert_allclose(np.exp(total), math.exp(-tr.loss), rtol=1e-10)
    assert tr.trellis.labels == [0, 1, 0, 3, 0, 3, 0, 2, 0]


def paths(T: int, C: int) -> list[tuple[int, ...]]:
    return list(itertools.product(range(C), repeat=T))


@pytest.mark.parametrize("labels", [[1, 2], [1, 1], [2], []])
def test_the_trellis_and_the_alignment_against_every_path(labels: list[int]) -> None:
    """Every path of 6 steps over blank and two letters, enumerated: p(l | x) is the sum over those that collapse to
    l, the Viterbi alignment the likeliest of them."""
    rng = np.random.default_rng(len(labels))
    log_probs = torch.log_softmax(torch.from_numpy(rng.normal(size=(6, 3)) * 2), dim=-1).numpy()
    spelling = [p for p in paths(6, 3) if collapse(p)[0] == labels]
    scores = [sum(log_probs[t, c] for t, c in enumerate(p)) for p in spelling]
    tr = trellis(log_probs, labels)
    assert tr.log_prob == pytest.approx(float(np.logaddexp.reduce(scores)), rel=1e-12)
    assert tr.alignment_log_prob == pytest.approx(max(scores), rel=1e-12)
    assert collapse(tr.path.tolist())[0] == labels
    assert sum(log_probs[t, c] for t, c in enumerate(tr.path)) == pytest.approx(tr.alignment_log_prob, rel=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_the_best_alignment_collapses_to_the_transcript(cell: str) -> None:
    model = make_model(cell, 2, 2, seed=11)
    labels = [2, 1, 1, 4]
    tr = trace_frames(model, frames(50, seed=12), labels, ALPHABET)
    assert collapse(tr.trellis.path.tolist())[0] == labels
    assert tr.target == "baad" and tr.target_source == "given"
    assert tr.trellis.alignment_log_prob <= -tr.loss  # one path of the sum


def test_without_a_transcript_the_loss_is_measured_against_the_greedy_text() -> None:
    model = make_model("gru", 1, 1, seed=5)
    tr = trace_frames(model, frames(40, seed=6), None, ALPHABET)
    ids, emitted = collapse(tr.greedy.tolist())
    assert tr.target_source == "greedy" and tr.target_ids == ids and tr.target == tr.text
    assert [int(c) for c in emitted if c >= 0] == ids and tr.emitted.tolist() == emitted.tolist()
    assert tr.loss == pytest.approx(float(ctc(torch.from_numpy(tr.log_probs), ids)), rel=1e-12)


def peaked(path: list[int], C: int, p: float = 0.97) -> NDArray[np.float64]:
    """log y for a path that holds `p` of each step's probability."""
    out = np.full((len(path), C), (1 - p) / (C - 1))
    out[np.arange(len(path)), path] = p
    logs: NDArray[np.float64] = np.log(out)
    return logs


def test_the_beam_search_agrees_with_greedy_on_a_peaked_distribution() -> None:
    path = [0, 1, 1, 0, 2, 0, 2, 3, 3, 0]
    best, _ = beam_search(peaked(path, 5), width=4)[0]
    assert best == collapse(path)[0] == [1, 2, 2, 3]


def test_the_beam_search_finds_a_likelier_text_than_greedy() -> None:
    """Two steps, blank 0.6 and "a" 0.4 at each: greedy reads blank, blank (""; p = 0.36), but "a" has three paths
    (a a, a blank, blank a: p = 0.64)."""
    log_probs = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    greedy_text = collapse(log_probs.argmax(axis=1).tolist())[0]
    (best, best_lp), (second, second_lp) = beam_search(log_probs, width=4)[:2]
    assert greedy_text == [] and best == [1] and second == []
    assert math.exp(best_lp) == pytest.approx(0.64) and math.exp(second_lp) == pytest.approx(0.36)


def test_a_beam_wide_enough_scores_each_text_exactly() -> None:
    """With a width that keeps every prefix, each beam's log-probability is log p(text | x): torch's CTC loss of it."""
    rng = np.random.default_rng(0)
    log_probs = torch.log_softmax(torch.from_numpy(rng.normal(size=(5, 3))), dim=-1)
    beams = beam_search(log_probs.numpy(), width=1000)
    assert len(beams) == len({tuple(collapse(p)[0]) for p in paths(5, 3)})
    for ids, lp in beams:
        assert lp == pytest.approx(-float(ctc(log_probs, ids)), rel=1e-10), ids


def test_a_transcript_longer_than_the_clip_can_spell_or_a_clip_shorter_than_a_step_is_refused_by_name() -> None:
    model = make_model("rnn", 1, 1, seed=0)
    with pytest.raises(Unalignable, match=r"needs at least 5 steps .* the audio gives 4"):
        trace_frames(model, frames(9, seed=0), [1, 2, 2, 3], ALPHABET)  # 4 steps; "abbc" needs 5
    trace_frames(model, frames(10, seed=0), [1, 2, 2, 3], ALPHABET)  # 5 steps: one path
    with pytest.raises(EmptyInput, match="the audio gives 1 frame"):
        trace_frames(model, frames(1, seed=0), None, ALPHABET)
    with pytest.raises(OverLimit, match="beam has 33; the limit is 32"):
        trace_frames(model, frames(10, seed=0), None, ALPHABET, beam_width=33)


def card(cell: str = "gru", bidirectional: bool = True, **block: object) -> ModelCard:
    return ModelCard(id=f"speech-{cell}", task="speech", cell=cell, kind="transcribe", hidden_size=8, num_layers=2,  # type: ignore[arg-type]
                     vocab={"level": "value", "tokens": ["<unk>"]}, bidirectional=bidirectional,
                     block=SpeechCard(alphabet=" -adefghilnorstuvwxyz", **block))  # type: ignore[arg-type]  # fmt: skip


def test_a_card_round_trips_and_names_its_family() -> None:
    c = card(stack=4, scale=0.5)
    data = json.loads(card_text(c))
    assert data["kind"] == "transcribe" and data["speech"]["stack"] == 4
    assert data["speech"]["front_end"] == {"sample_rate": 16000, "window": 400, "hop": 160, "bands": N_MELS,
                                           "log_floor": 1e-6}  # fmt: skip
    assert card_from_json(data) == c and card_text(card_from_json(data)) == card_text(c)
    family = family_of("transcribe")
    assert family.name == "speech" and family.head_size(c) == 22 and family.input_size(c) == 0
    vocab = family.output_vocab(c)
    assert vocab is not None and vocab.tokens[0] == BLANK
    assert vocab.encode("Forty-two").ids == [1 + " -adefghilnorstuvwxyz".index(ch) for ch in "forty-two"]


def test_a_card_of_another_front_end_or_a_bad_alphabet_is_refused() -> None:
    data = json.loads(card_text(card()))
    front_end = {**data["speech"]["front_end"], "bands": 80}
    with pytest.raises(ModelFileError, match=r"trained on the front end .*'bands': 80.* this server computes"):
        card_from_json({**data, "speech": {**data["speech"], "front_end": front_end}})
    with pytest.raises(ModelFileError, match="distinct characters"):
        card_from_json({**data, "speech": {**data["speech"], "alphabet": "aab"}})
    with pytest.raises(ModelFileError, match=r"speech .*unexpected keyword argument 'colour'"):
        card_from_json({**data, "speech": {**data["speech"], "colour": "red"}})


def tone_wav(seconds: float = 0.5, rate: int = 22_050) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("cell", CELLS)
def test_a_saved_model_loads_and_traces_a_wav(cell: str, tmp_path: Path) -> None:
    """A torch.nn module over stacked frames with a linear head, named rnn and head (as the feasibility bench trains
    it), is a speech model's weights; the zoo's loader builds it from its card and traces a WAV's bytes."""
    c = card(cell)
    model = SpeechModel(config(c))
    save_model(tmp_path, c, model)
    loaded = load_model(tmp_path, c.id)
    tr = trace(loaded, tone_wav(), transcript="Ten")
    assert tr.target == "ten" and tr.target_ids == [1 + c.block.alphabet.index(ch) for ch in "ten"]  # type: ignore[attr-defined]
    assert tr.frames.shape == (48, N_MELS) and tr.steps == 16 and len(tr.layers) == 4
    with pytest.raises(UnknownTokens, match="'7' at 0"):
        trace(loaded, tone_wav(), transcript="70")
    with pytest.raises(WrongModelKind, match="transcribes speech"):
        family_of("transcribe").lab_model(loaded, None)


def test_a_model_of_another_family_is_refused_saying_what_it_does() -> None:
    with pytest.raises(WrongModelKind, match="charlm-gru reads text: it is not a model of speech"):
        trace(load_model(MODELS, "charlm-gru"), tone_wav())


def test_weights_that_do_not_fit_the_card_are_refused_by_name(tmp_path: Path) -> None:
    c = card("gru")
    save_model(tmp_path, c, SpeechModel(config(card("gru", bidirectional=False))))
    with pytest.raises(ModelFileError, match=r"missing .*reverse"):
        load_model(tmp_path, c.id)
