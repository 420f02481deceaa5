"""The encoder–decoder's trace against a float64 autograd oracle, its decoding, and its errors.

The oracle is written here from the equations (torch.nn's documented cell formulas, one step at a time, additive
attention, a linear head), independently of the engine: every state is its own retained tensor, so autograd
gives the total derivatives the trace must match. The share of ∂L/∂h_j that arrives through attention is
autograd's gradient of L with respect to the encoder states as attention alone reads them (a second use of
the same values, detached from the recurrence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from torch import Tensor

from app.engine.card import LoadedModel, ModelCard, save_model
from app.engine.errors import EmptyInput, EngineError, OverLimit, UnknownTokens, WrongModelKind
from app.engine.family import load_model
from app.engine.layers import GATES
from app.engine.translation.card import TranslationCard, translation_card
from app.engine.translation.model import (
    BOS,
    BOS_ID,
    EOS,
    EOS_ID,
    EQUATIONS,
    Seq2SeqConfig,
    Seq2SeqModel,
    beam_search,
    greedy,
)
from app.engine.translation.trace import TranslationTrace, trace_ids, trace_translation, translate
from app.engine.vocab import UNK, Vocab

CELLS = ["rnn", "lstm", "gru"]
STATE_TOL = 1e-5
GRAD_RTOL = 1e-4
SOURCE_WORDS = ("one", "two", "three", "four", "five", "six", "seven")
TARGET = Vocab(tokens=(UNK, BOS, EOS, *"abcdefgh"), level="char")


def make_model(cell: str, layers: int, attention: bool, seed: int, hidden: int = 12) -> Seq2SeqModel:
    torch.manual_seed(seed)
    cfg = Seq2SeqConfig(cell, len(SOURCE_WORDS) + 1, len(TARGET), 6, hidden, layers, 10 if attention else 0)  # type: ignore[arg-type]
    model = Seq2SeqModel(cfg)
    for p in model.parameters():  # larger than torch's init, so that gates and tanh saturate now and then
        p.data.mul_(1.5)
    return model.eval().requires_grad_(False)


@dataclass
class Oracle:
    enc_hidden: list[Tensor]  # per layer (J, H)
    enc_cell: list[Tensor | None]
    enc_gates: list[dict[str, Tensor]]
    dec_hidden: list[Tensor]
    dec_cell: list[Tensor | None]
    dec_gates: list[dict[str, Tensor]]
    attention: Tensor | None  # (T, J)
    context: Tensor | None
    probs: Tensor
    step_loss: Tensor
    loss: float
    enc_grad_hidden: list[Tensor]  # per layer (J,)
    enc_grad_cell: list[Tensor | None]
    dec_grad_hidden: list[Tensor]
    dec_grad_cell: list[Tensor | None]
    via_attention: Tensor | None  # (J,)
    enc_grad_input: Tensor
    dec_grad_input: Tensor


Gates = dict[str, Tensor]


def cell_step(cell: str, w: list[Tensor], x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Gates]:
    """torch.nn's documented formulas: (h, c, gates)."""
    W_ih, W_hh, b_ih, b_hh = w
    gi, gh = W_ih @ x + b_ih, W_hh @ h + b_hh
    if cell == "lstm":
        i, f, g, o = (gi + gh).chunk(4)
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c = f * c + i * g
        return o * c.tanh(), c, {"input": i, "forget": f, "candidate": g, "output": o}
    if cell == "gru":
        ir, iz, in_ = gi.chunk(3)
        hr, hz, hn = gh.chunk(3)
        r, z = (ir + hr).sigmoid(), (iz + hz).sigmoid()
        n = (in_ + r * hn).tanh()
        return (1 - z) * n + z * h, c, {"reset": r, "update": z, "candidate": n}
    return (gi + gh).tanh(), c, {}


def oracle(model: Seq2SeqModel, src: list[int], tgt: list[int]) -> Oracle:
    cfg = model.config
    sd = {k: v.double() for k, v in model.state_dict().items()}
    H, L = cfg.hidden_size, cfg.num_layers

    Run = tuple[list[list[Tensor]], list[list[Tensor]], list[dict[str, list[Tensor]]]]

    def run(prefix: str, xs: list[Tensor], starts: list[tuple[Tensor, Tensor]]) -> Run:
        hidden: list[list[Tensor]] = []
        cells: list[list[Tensor]] = []
        gates: list[dict[str, list[Tensor]]] = []
        inputs = xs
        for k in range(L):
            w = [sd[f"{prefix}.{n}_l{k}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            h, c = starts[k]
            hs: list[Tensor] = []
            cs: list[Tensor] = []
            gs: dict[str, list[Tensor]] = {}
            for x in inputs:
                h, c, g = cell_step(cfg.cell, w, x, h, c)
                h.retain_grad()
                hs.append(h)
                if cfg.cell == "lstm":
                    c.retain_grad()
                    cs.append(c)
                for name, value in g.items():
                    gs.setdefault(name, []).append(value)
            hidden.append(hs)
            cells.append(cs)
            gates.append(gs)
            inputs = hs
        return hidden, cells, gates

    zero = torch.zeros(H, dtype=torch.float64)
    xs = [sd["encoder_embedding.weight"][i].clone().requires_grad_(True) for i in src]
    enc_h, enc_c, enc_g = run("encoder", xs, [(zero, zero)] * L)
    starts = [(enc_h[k][-1], enc_c[k][-1] if cfg.cell == "lstm" else zero) for k in range(L)]
    dec_in = [BOS_ID, *tgt[:-1]]
    us = [sd["decoder_embedding.weight"][i].clone().requires_grad_(True) for i in dec_in]
    dec_h, dec_c, dec_g = run("decoder", us, starts)
    # Attention reads the top encoder states through a detached copy whose gradient is attention's share alone;
    # the total gradient of h_j is that share plus what reaches h_j through the recurrence and the decoder.
    memory_att = torch.stack(enc_h[-1]).detach().requires_grad_(True)  # (J, H)
    s = torch.stack(dec_h[-1])  # (T, H)
    alpha = context = None
    if cfg.attention:
        Wq, Wk, bk = sd["attention.query.weight"], sd["attention.key.weight"], sd["attention.key.bias"]
        v = sd["attention.energy.weight"][0]
        rows_alpha, rows_ctx = [], []
        for t in range(len(tgt)):
            e = torch.stack([v @ torch.tanh(Wq @ s[t] + Wk @ memory_att[j] + bk) for j in range(len(src))])
            a = torch.softmax(e, 0)
            rows_alpha.append(a)
            rows_ctx.append(a @ memory_att)
        alpha, context = torch.stack(rows_alpha), torch.stack(rows_ctx)
        logits = torch.cat([s, context], 1) @ sd["head.weight"].T + sd["head.bias"]
    else:
        logits = s @ sd["head.weight"].T + sd["head.bias"]
    logp = torch.log_softmax(logits, -1)
    losses = -logp[torch.arange(len(tgt)), torch.tensor(tgt)]
    L_ = losses.sum()
    # The copy's gradient is attention's share; autograd adds it to the real states' by a second backward.
    L_.backward(retain_graph=True)  # type: ignore[no-untyped-call]
    via = memory_att.grad
    if via is not None:
        torch.stack(enc_h[-1]).backward(via)  # type: ignore[no-untyped-call]

    def norms(ts: list[Tensor]) -> Tensor:
        return torch.stack([t.grad.norm() if t.grad is not None else torch.zeros((), dtype=torch.float64) for t in ts])

    def stack_gates(gs: dict[str, list[Tensor]]) -> dict[str, Tensor]:
        return {n: torch.stack(v).detach() for n, v in gs.items()}

    return Oracle(
        enc_hidden=[torch.stack(h).detach() for h in enc_h],
        enc_cell=[torch.stack(c).detach() if c else None for c in enc_c],
        enc_gates=[stack_gates(g) for g in enc_g],
        dec_hidden=[torch.stack(h).detach() for h in dec_h],
        dec_cell=[torch.stack(c).detach() if c else None for c in dec_c],
        dec_gates=[stack_gates(g) for g in dec_g],
        attention=None if alpha is None else alpha.detach(),
        context=None if context is None else context.detach(),
        probs=logp.exp().detach(),
        step_loss=losses.detach(),
        loss=float(L_.detach()),
        enc_grad_hidden=[norms(h) for h in enc_h],
        enc_grad_cell=[norms(c) if c else None for c in enc_c],
        dec_grad_hidden=[norms(h) for h in dec_h],
        dec_grad_cell=[norms(c) if c else None for c in dec_c],
        via_attention=None if via is None else via.norm(dim=1),
        enc_grad_input=norms(xs),
        dec_grad_input=norms(us),
    )


def assert_close_rel(actual: NDArray[np.float64] | None, expected: Tensor | None, rtol: float = GRAD_RTOL) -> None:
    """Each value against itself: |a − e| ≤ rtol·|e|, so that 1e-30 must be reported as 1e-30, not 0."""
    assert actual is not None and expected is not None
    exp = expected.numpy()
    assert actual.shape == exp.shape
    bad = np.abs(actual - exp) > rtol * np.abs(exp)
    assert not bad.any(), f"at {np.nonzero(bad)[0][:5]}: engine {actual[bad][:3]} vs autograd {exp[bad][:3]}"


def check(tr: TranslationTrace, model: Seq2SeqModel, src: list[int], tgt: list[int]) -> Oracle:
    ref = oracle(model, src, tgt)
    cell = model.config.cell
    assert tr.loss == pytest.approx(ref.loss, rel=1e-6)
    np.testing.assert_allclose(tr.step_loss, ref.step_loss.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tr.probs, ref.probs.numpy(), atol=STATE_TOL)
    sides = (
        (tr.encoder.layers, ref.enc_hidden, ref.enc_cell, ref.enc_gates, ref.enc_grad_hidden, ref.enc_grad_cell),
        (tr.decoder.layers, ref.dec_hidden, ref.dec_cell, ref.dec_gates, ref.dec_grad_hidden, ref.dec_grad_cell),
    )
    for layers, hidden, cells, gates, grad_h, grad_c in sides:
        assert len(layers) == model.config.num_layers
        for k, layer in enumerate(layers):
            np.testing.assert_allclose(layer.hidden, hidden[k].numpy(), atol=STATE_TOL)
            assert list(layer.gates) == list(GATES[cell])
            for name, values in layer.gates.items():
                np.testing.assert_allclose(values, gates[k][name].numpy(), atol=STATE_TOL, err_msg=name)
            assert_close_rel(layer.grad_hidden, grad_h[k])
            if cell == "lstm":
                assert layer.cell_state is not None
                np.testing.assert_allclose(layer.cell_state, cells[k].numpy(), atol=STATE_TOL)  # type: ignore[union-attr]
                assert_close_rel(layer.grad_cell_state, grad_c[k])
            else:
                assert layer.cell_state is None and layer.grad_cell_state is None
    assert_close_rel(tr.encoder.grad_input, ref.enc_grad_input)
    assert_close_rel(tr.decoder.grad_input, ref.dec_grad_input)
    if model.config.attention:
        assert tr.attention is not None and tr.context is not None and ref.attention is not None
        np.testing.assert_allclose(tr.attention, ref.attention.numpy(), atol=STATE_TOL)
        np.testing.assert_allclose(tr.attention.sum(1), 1.0, atol=1e-6)
        np.testing.assert_allclose(tr.context, ref.context.numpy(), atol=STATE_TOL)  # type: ignore[union-attr]
        assert_close_rel(tr.via_attention, ref.via_attention)
    else:
        assert tr.attention is None and tr.context is None and tr.via_attention is None
    return ref


def random_ids(n: int, low: int, high: int, seed: int) -> list[int]:
    return torch.randint(low, high, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("attention", [True, False])
def test_trace_matches_the_autograd_oracle(cell: str, layers: int, attention: bool) -> None:
    model = make_model(cell, layers, attention, seed=layers * 5 + attention)
    src = random_ids(9, 1, len(SOURCE_WORDS) + 1, seed=1)
    tgt = [*random_ids(13, 3, len(TARGET), seed=2), EOS_ID]
    tr = trace_ids(model, TARGET, src, tgt)
    check(tr, model, src, tgt)
    assert tr.target_tokens[-1] == EOS and tr.decoder.tokens[0] == BOS and tr.decoder.token_ids[1:] == tgt[:-1]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("attention", [True, False])
def test_tiny_early_gradients_are_exact_not_zero(cell: str, attention: bool) -> None:
    """Small recurrent weights and a long source: ‖∂L/∂h_0‖ of the encoder falls below float32's range (a plain
    float32 autograd would report 0) and still matches the float64 oracle value for value."""
    model = make_model(cell, 1, attention, seed=7)
    with torch.no_grad():
        H = model.config.hidden_size
        for side in (model.encoder_side, model.decoder_side):
            w = side.weights(0)
            w.weight_hh.mul_(0.02)
            w.weight_ih.mul_(0.3)
            if cell != "rnn":  # the LSTM's forget gate, the GRU's update gate: nearly shut, no carry either
                w.bias_ih[H : 2 * H].fill_(-8.0)
        if attention:
            assert model.attention is not None
            # attention's share of the early steps is tiny too: ~1e-30, whose square underflows even float64's
            # normal range and float32 altogether
            model.attention.key.weight.mul_(1e-30)
            model.head.weight[:, model.config.hidden_size :].mul_(1e-30)
    src = random_ids(45, 1, len(SOURCE_WORDS) + 1, seed=3)
    tgt = [4, 5, EOS_ID]
    tr = trace_ids(model, TARGET, src, tgt)
    ref = check(tr, model, src, tgt)
    first = float(ref.enc_grad_hidden[0][0])
    assert 0 < first < (1e-25 if attention else 1e-38), f"the test needs a far smaller gradient than {first}"
    assert tr.encoder.layers[0].grad_hidden[0] > 0
    if attention:
        assert tr.via_attention is not None and 0 < tr.via_attention[0] < 1e-25


def test_via_attention_is_the_whole_gradient_of_an_encoder_step_the_recurrence_forgets() -> None:
    """With W_hh = 0 in the encoder, step j reaches the loss only through attention (and the last step also
    through the decoder's start): its total gradient is its attention share."""
    model = make_model("rnn", 1, True, seed=4)
    with torch.no_grad():
        model.encoder_side.weights(0).weight_hh.zero_()
    src = random_ids(6, 1, 8, seed=5)
    tr = trace_ids(model, TARGET, src, [3, 4, EOS_ID])
    assert tr.via_attention is not None
    np.testing.assert_allclose(tr.encoder.layers[0].grad_hidden[:-1], tr.via_attention[:-1], rtol=1e-12)
    assert tr.encoder.layers[0].grad_hidden[-1] != pytest.approx(tr.via_attention[-1], rel=1e-3)


def test_without_attention_only_the_last_encoder_step_hears_the_decoder_directly() -> None:
    model = make_model("gru", 1, False, seed=8)
    with torch.no_grad():
        model.encoder_side.weights(0).weight_hh.zero_()
        model.encoder_side.weights(0).bias_hh[: 2 * model.config.hidden_size].fill_(-30.0)  # z ≈ 0: no carry
    tr = trace_ids(model, TARGET, [1, 2, 3, 4], [5, EOS_ID])
    g = tr.encoder.layers[0].grad_hidden
    assert g[-1] > 1e-3 and (g[:-1] < 1e-9).all()


# --- decoding -------------------------------------------------------------------------------------------------


def loaded_of(model: Seq2SeqModel, tmp_path: Path, max_length: int = 30) -> LoadedModel:
    cfg = model.config
    card = ModelCard(
        id="toy-translate",
        task="toy",
        cell=cfg.cell,
        kind="translate",
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        vocab=Vocab(tokens=(UNK, *SOURCE_WORDS), level="word", case="lower").to_json(),
        block=TranslationCard(
            embed_size=cfg.embed_size,
            target_vocab=TARGET.to_json(),
            attention=cfg.attention,
            attention_size=cfg.attention_size,
            equations=EQUATIONS,
            max_length=max_length,
        ),
    )
    save_model(tmp_path, card, model)
    return load_model(tmp_path, card.id)


@pytest.fixture(params=[("gru", True), ("lstm", True), ("gru", False)], ids=["gru-att", "lstm-att", "gru"])
def toy(request: pytest.FixtureRequest, tmp_path: Path) -> LoadedModel:
    cell, attention = request.param
    model = make_model(cell, 2, attention, seed=21)
    with torch.no_grad():
        model.head.bias[EOS_ID] += 2.5  # outputs that end within the length limit
    return loaded_of(model, tmp_path)


def test_a_saved_translation_model_loads_back_with_its_card(toy: LoadedModel) -> None:
    assert isinstance(toy.model, Seq2SeqModel) and toy.target_vocab == TARGET
    assert toy.card.kind == "translate" and translation_card(toy.card).equations == EQUATIONS
    names = set(toy.model.state_dict())
    assert {"encoder_embedding.weight", "encoder.weight_ih_l1", "decoder.weight_hh_l0", "head.weight"} <= names
    assert ("attention.key.weight" in names) == translation_card(toy.card).attention


def test_beam_of_one_is_greedy_and_the_best_score_is_the_traced_log_prob(toy: LoadedModel) -> None:
    model = toy.model
    assert isinstance(model, Seq2SeqModel)
    for text in ("one two three", "seven six five four three two one", "four"):
        ids = toy.vocab.encode(text).ids
        one = translate(toy, text, beam=1)
        g = greedy(model, ids, 30)
        assert one.beams[0].token_ids == list(g.ids) and len(one.beams) == 1
        # greedy: each written token is the most likely one at its step (never <unk> or <s>)
        tr = one.trace
        for t, token in enumerate(g.ids):
            p = tr.probs[t].copy()
            p[: BOS_ID + 1] = -1
            assert int(p.argmax()) == token
        for width in (2, 5, 8):
            result = translate(toy, text, beam=width)
            scores = [b.score for b in result.beams]
            assert scores == sorted(scores, reverse=True) and 1 <= len(scores) <= width
            assert len({tuple(b.token_ids) for b in result.beams}) == len(scores), "distinct candidates"
            assert result.output == result.beams[0].output == result.trace.output
            assert result.trace.log_prob == pytest.approx(scores[0], rel=1e-5, abs=1e-6)
            assert scores[0] >= one.beams[0].score - 1e-6, "a wider beam never finds a worse best candidate"
            for b in result.beams:  # every candidate's score is its own log-probability
                tr_b = trace_ids(model, TARGET, ids, b.token_ids)
                assert tr_b.log_prob == pytest.approx(b.score, rel=1e-5, abs=1e-6)
                assert b.finished == (b.token_ids[-1] == EOS_ID)


def test_a_forced_prefix_is_kept_and_scored(toy: LoadedModel) -> None:
    model = toy.model
    assert isinstance(model, Seq2SeqModel)
    for width in (1, 3):
        result = translate(toy, "two three", beam=width, prefix="hag")
        for b in result.beams:
            assert b.output.startswith("hag") and b.token_ids[:3] == TARGET.encode("hag").ids
        assert result.trace.prefix_length == 3
        assert result.trace.log_prob == pytest.approx(result.beams[0].score, rel=1e-5, abs=1e-6)
    tr = trace_translation(toy, "two three", prefix="hag")
    assert tr.output.startswith("hag") and tr.target_source == "greedy" and tr.prefix_length == 3
    assert tr.target_ids == list(greedy(model, toy.vocab.encode("two three").ids, 30, TARGET.encode("hag").ids).ids)


def test_teacher_forcing_scores_the_given_target(toy: LoadedModel) -> None:
    tr = trace_translation(toy, "one two", "bad", top_k=3)
    assert tr.target_tokens == ["b", "a", "d", EOS] and tr.output == "bad" and tr.target_source == "given"
    assert tr.top_ids.shape == (4, 3) and tr.source_tokens == ["one", "two"] == tr.encoder.tokens
    assert math.isclose(tr.loss, float(tr.step_loss.sum()), rel_tol=1e-12)


def test_max_length_bounds_every_output(toy: LoadedModel) -> None:
    assert isinstance(toy.model, Seq2SeqModel)
    with torch.no_grad():
        toy.model.head.bias[EOS_ID] -= 100.0  # it never ends
    result = translate(toy, "one", beam=3, max_length=7)
    assert all(len(b.token_ids) == 7 and not b.finished for b in result.beams)
    assert not result.trace.finished and len(result.trace.target_ids) == 7


def test_errors_name_what_is_wrong(toy: LoadedModel, tmp_path: Path) -> None:
    with pytest.raises(UnknownTokens) as e:
        trace_translation(toy, "one twoo three fiv")
    assert e.value.positions == [1, 3] and "'twoo' at 1" in str(e.value)
    tr = trace_translation(toy, "one twoo", allow_unknown=True)
    assert tr.unknown == [1] and tr.source_ids[1] == 0
    with pytest.raises(EmptyInput):
        translate(toy, "   ")
    with pytest.raises(OverLimit, match="max_source_steps"):
        trace_translation(toy, "one " * 11, max_source_steps=10)
    with pytest.raises(OverLimit, match="max_length"):
        trace_translation(toy, "one", "abcdefgh" * 4)
    with pytest.raises(OverLimit, match="max_length"):
        translate(toy, "one", prefix="abcabc", max_length=5)
    with pytest.raises(UnknownTokens, match="target"):
        trace_translation(toy, "one", "xyz")
    with pytest.raises(OverLimit, match="beam"):
        translate(toy, "one", beam=9)
    with pytest.raises(EngineError, match="not both"):
        trace_translation(toy, "one", "ab", prefix="a")


def test_sequence_model_engine_refuses_a_translation_model_and_vice_versa(toy: LoadedModel) -> None:
    from app.engine.token.generate import generate
    from app.engine.token.trace import trace

    with pytest.raises(WrongModelKind):
        trace(toy, "one two")
    with pytest.raises(WrongModelKind):
        generate(toy.model, [1, 2], 3, 1.0, 0)
    memory = load_model(Path(__file__).resolve().parents[2] / "models", "memory-gru")
    with pytest.raises(WrongModelKind):
        translate(memory, "A 123 ?")


def test_beam_search_rejects_a_width_outside_1_to_8(toy: LoadedModel) -> None:
    assert isinstance(toy.model, Seq2SeqModel)
    with pytest.raises(ValueError):
        beam_search(toy.model, [1, 2], 0, 10)
