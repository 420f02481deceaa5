"""The caption family's engine (app/engine/caption/): its trace against torch.nn (the decoder's states, the model's
own logits) and float64 autograd through the documented equations (the loss, every ‖∂L/∂h_t‖, ‖∂L/∂c_t‖, the W_hh
terms, the gradient reaching each grid cell in total, through attention, through the start state, and word by
word), its beam search, its card on the registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from app.engine.caption.card import CaptionCard
from app.engine.caption.model import BOS_ID, EOS_ID, EQUATIONS, CaptionConfig, CaptionModel, beam_search, greedy_batch
from app.engine.caption.trace import caption_pixels, trace_pixels
from app.engine.card import ModelCard, card_text, save_model
from app.engine.errors import EmptyInput, ModelFileError, OverLimit, UnknownTokens, WrongModelKind
from app.engine.family import card_from_json, family_of, load_model
from app.engine.layers import GATES
from app.engine.vocab import UNK, Vocab
from app.training.tasks.shapes_data import WORDS, pixels, scenes
from tests.engine.test_trace import CELLS, STATE_TOL, assert_close_rel

VOCAB = Vocab((UNK, "<s>", "</s>", *WORDS), level="word", case="lower")
SCENES = scenes(seed=11, n=4)


def make_model(cell: str, seed: int, hidden: int = 12) -> CaptionModel:
    torch.manual_seed(seed)
    model = CaptionModel(CaptionConfig(cell, len(VOCAB), embed_size=6, hidden_size=hidden,  # type: ignore[arg-type]
                                       channels=(4, 6, 5), attention_size=7))  # fmt: skip
    for name, p in model.named_parameters():
        if not name.startswith("conv"):
            p.data.mul_(1.5)  # gates that saturate now and then, as in a trained model
    return model.eval()


def ids_of(caption: str) -> list[int]:
    return [*VOCAB.encode(caption).ids, EOS_ID]


@dataclass
class Oracle:
    hidden: Tensor  # (T, H)
    cell_state: Tensor | None
    gates: dict[str, Tensor]
    attention: Tensor  # (T, G)
    probs: Tensor  # (T, V)
    step_loss: Tensor
    grad_hidden: Tensor  # (T,)
    grad_cell_state: Tensor | None
    grad_weight_hh: Tensor
    grad_input: Tensor
    grad_context: Tensor
    grad_start: float
    grad_grid: Tensor  # (G,)
    grad_grid_attention: Tensor
    grad_grid_start: Tensor
    grad_grid_words: Tensor  # (T, G)


def oracle(model: CaptionModel, image: Tensor, word_ids: list[int]) -> Oracle:
    """EQUATIONS, one step at a time in float64 under autograd: the grid is two leaves of equal value, one read by
    attention, one by the start state, so that each share of its gradient is autograd's own."""
    double = CaptionModel(model.config).double()
    double.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    sd = {k: v.detach() for k, v in double.state_dict().items()}
    with torch.no_grad():
        grid = double.encode(image[None])[0]  # (G, F) the encoder in float64
    m_att = grid.clone().requires_grad_(True)
    m_start = grid.clone().requires_grad_(True)
    cell, H = model.config.cell, model.config.hidden_size
    flat = m_start.flatten()
    h = torch.tanh(sd["init_h.weight"] @ flat + sd["init_h.bias"])
    h.retain_grad()
    start = h
    c = torch.tanh(sd["init_c.weight"] @ flat + sd["init_c.bias"]) if cell == "lstm" else torch.zeros(H).double()
    W_ih, W_hh, b_ih, b_hh = (sd[f"decoder.{n}_l0"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    read = [BOS_ID, *word_ids[:-1]]
    xs = [sd["embedding.weight"][i].clone().requires_grad_(True) for i in read]
    hs, cs, ws, ctxs = [], [], [], []
    gates: dict[str, list[Tensor]] = {}
    alphas, losses = [], []
    v = sd["attention.energy.weight"][0]
    for t, x in enumerate(xs):
        Wt = W_hh.clone().requires_grad_(True)
        ws.append(Wt)
        gi, gh = W_ih @ x + b_ih, Wt @ h + b_hh
        if cell == "lstm":
            i, f, g, o = (gi + gh).chunk(4)
            i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
            c = f * c + i * g
            c.retain_grad()
            cs.append(c)
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
        hs.append(h)
        for name, value in step.items():
            gates.setdefault(name, []).append(value)
        e = torch.tanh(sd["attention.query.weight"] @ h + m_att @ sd["attention.key.weight"].T
                       + sd["attention.key.bias"]) @ v  # fmt: skip
        alpha = torch.softmax(e, dim=0)
        ctx = alpha @ m_att
        ctx.retain_grad()
        ctxs.append(ctx)
        alphas.append(alpha)
        before = ctxs[-2] if t else torch.zeros_like(ctx)  # c_{t−1}: the head reads it too (c_{−1} = 0)
        logits = sd["head.weight"] @ torch.cat([h, ctx, before]) + sd["head.bias"]
        losses.append(-torch.log_softmax(logits, dim=0)[word_ids[t]])
    step_loss = torch.stack(losses)
    step_loss.sum().backward(retain_graph=True)  # type: ignore[no-untyped-call]
    assert m_att.grad is not None and m_start.grad is not None and start.grad is not None

    def norms(ts: list[Tensor]) -> Tensor:
        return torch.stack([t.grad.norm() for t in ts])  # type: ignore[union-attr]

    grad_hidden, grad_weight_hh, grad_input, grad_context = norms(hs), norms(ws), norms(xs), norms(ctxs)
    grad_cell_state = norms(cs) if cs else None
    grad_start = float(start.grad.norm())
    grid_grads = (m_att.grad.clone(), m_start.grad.clone())
    words = []
    for t in range(len(losses)):  # each word's own loss, reaching the grid (after the total's: this adds to .grad)
        ga, gs = torch.autograd.grad(losses[t], [m_att, m_start], retain_graph=True, allow_unused=True)
        total = (torch.zeros_like(grid) if ga is None else ga) + (torch.zeros_like(grid) if gs is None else gs)
        words.append(total.norm(dim=1))
    with torch.no_grad():
        probs = torch.stack(
            [
                torch.softmax(sd["head.weight"] @ torch.cat([h_, c_, b_]) + sd["head.bias"], 0)
                for h_, c_, b_ in zip(hs, ctxs, [torch.zeros_like(ctxs[0]), *ctxs[:-1]], strict=True)
            ]
        )
    return Oracle(
        hidden=torch.stack(hs).detach(),
        cell_state=torch.stack(cs).detach() if cs else None,
        gates={k: torch.stack(vs).detach() for k, vs in gates.items()},
        attention=torch.stack(alphas).detach(),
        probs=probs,
        step_loss=step_loss.detach(),
        grad_hidden=grad_hidden,
        grad_cell_state=grad_cell_state,
        grad_weight_hh=grad_weight_hh,
        grad_input=grad_input,
        grad_context=grad_context,
        grad_start=grad_start,
        grad_grid=(grid_grads[0] + grid_grads[1]).norm(dim=1),
        grad_grid_attention=grid_grads[0].norm(dim=1),
        grad_grid_start=grid_grads[1].norm(dim=1),
        grad_grid_words=torch.stack(words),
    )


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("scene", [0, 1])
def test_the_trace_matches_torch_nn_and_float64_autograd(cell: str, scene: int) -> None:
    model = make_model(cell, seed=scene * 5 + len(cell))
    image = torch.from_numpy(pixels(SCENES[scene]))
    word_ids = ids_of(SCENES[scene].caption)
    tr = trace_pixels(model, VOCAB, image, word_ids)

    # the decoder's states are torch.nn's own module's, from the model's start state; the probabilities its forward's
    with torch.no_grad():
        grid = model.encode(image[None])
        out, _ = model.decoder(model.embedding(torch.tensor([[BOS_ID, *word_ids[:-1]]])), model.start(grid))
        logits = model(image[None], torch.tensor([[BOS_ID, *word_ids[:-1]]]))[0]
    np.testing.assert_allclose(tr.decoder.hidden, out[0].numpy(), atol=STATE_TOL)
    np.testing.assert_allclose(tr.probs, torch.softmax(logits, -1).numpy(), atol=STATE_TOL)

    ref = oracle(model, image, word_ids)
    T, G = len(word_ids), model.config.cells
    np.testing.assert_allclose(tr.decoder.hidden, ref.hidden.numpy(), atol=STATE_TOL)
    assert sorted(tr.decoder.gates) == sorted(GATES[cell])
    for name, values in tr.decoder.gates.items():
        np.testing.assert_allclose(values, ref.gates[name].numpy(), atol=STATE_TOL, err_msg=name)
    assert tr.attention.shape == (T, G)
    np.testing.assert_allclose(tr.attention.sum(axis=1), np.ones(T), atol=1e-12)  # rows sum to 1
    np.testing.assert_allclose(tr.attention, ref.attention.numpy(), atol=STATE_TOL)
    np.testing.assert_allclose(tr.probs, ref.probs.numpy(), atol=STATE_TOL)
    np.testing.assert_allclose(tr.step_loss, ref.step_loss.numpy(), rtol=1e-5)
    assert tr.loss == pytest.approx(float(ref.step_loss.sum()), rel=1e-5)
    assert_close_rel(tr.decoder.grad_hidden, ref.grad_hidden)
    assert_close_rel(tr.decoder.grad_weight_hh, ref.grad_weight_hh)
    if cell == "lstm":
        assert tr.decoder.cell_state is not None and tr.decoder.grad_cell_state is not None
        assert ref.cell_state is not None and ref.grad_cell_state is not None
        np.testing.assert_allclose(tr.decoder.cell_state, ref.cell_state.numpy(), atol=STATE_TOL)
        assert_close_rel(tr.decoder.grad_cell_state, ref.grad_cell_state)
        assert tr.start_cell is not None
    else:
        assert tr.decoder.grad_cell_state is None and tr.start_cell is None
    assert_close_rel(tr.grad_input, ref.grad_input)
    assert_close_rel(tr.grad_context, ref.grad_context)
    assert tr.grad_start == pytest.approx(ref.grad_start, rel=1e-4)
    assert_close_rel(tr.grad_grid, ref.grad_grid)
    assert_close_rel(tr.grad_grid_attention, ref.grad_grid_attention)
    assert_close_rel(tr.grad_grid_start, ref.grad_grid_start)
    assert tr.grad_grid_words.shape == (T, G)
    assert_close_rel(tr.grad_grid_words.ravel(), ref.grad_grid_words.ravel())
    # the top 5 are the 5 likeliest, in order
    order = np.argsort(-tr.probs, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(np.sort(tr.top_ids, axis=1), np.sort(order, axis=1))
    assert (np.diff(tr.top_probs, axis=1) <= 0).all()
    assert tr.words == VOCAB.decode(word_ids).split() and tr.caption == SCENES[scene].caption and tr.finished


@pytest.mark.parametrize("cell", CELLS)
def test_every_beam_scores_what_its_caption_traced_teacher_forced_loses(cell: str) -> None:
    model = make_model(cell, seed=3)
    image = torch.from_numpy(pixels(SCENES[2]))
    beams = beam_search(model, image, width=4, max_length=12)
    assert len(beams) == 4 and [b.score for b in beams] == sorted((b.score for b in beams), reverse=True)
    for b in beams:
        assert b.finished == (b.ids[-1] == EOS_ID) and len(b.ids) <= 12
        assert BOS_ID not in b.ids and 0 not in b.ids  # never <unk> or <s>
        assert trace_pixels(model, VOCAB, image, list(b.ids)).loss == pytest.approx(-b.score, rel=1e-5)
    greedy = beam_search(model, image, width=1, max_length=12)[0]
    assert greedy.score <= beams[0].score
    images = torch.stack([torch.from_numpy(pixels(s)) for s in SCENES])
    for row, scene_image in zip(greedy_batch(model, images, 12), images, strict=True):
        assert row == list(beam_search(model, scene_image, width=1, max_length=12)[0].ids)


def card_for(model: CaptionModel, cell: str, model_id: str = "shapes-test") -> ModelCard:
    cfg = model.config
    block = CaptionCard(words=VOCAB.to_json(), embed_size=cfg.embed_size, channels=list(cfg.channels),
                        attention_size=cfg.attention_size, max_length=12, equations=EQUATIONS)  # fmt: skip
    return ModelCard(id=model_id, task="shapes", cell=cell, kind="caption", hidden_size=cfg.hidden_size,  # type: ignore[arg-type]
                     num_layers=1, vocab=Vocab((UNK,), level="value").to_json(), block=block)  # fmt: skip


def test_a_caption_model_saves_and_loads_through_the_registry_and_captions(tmp_path: Path) -> None:
    model = make_model("gru", seed=1)
    card = card_for(model, "gru")
    save_model(tmp_path, card, model)
    loaded = load_model(tmp_path, "shapes-test")
    assert family_of("caption").name == "caption" and loaded.card == card
    assert card_text(card_from_json(card.to_json())) == card_text(card)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.model.state_dict().items())
    image = pixels(SCENES[0])
    result = caption_pixels(loaded, image, beam=3)
    assert result.caption == result.beams[0].caption and result.trace.target_source == "greedy"
    assert result.trace.loss == pytest.approx(-result.beams[0].score, rel=1e-5)
    given = caption_pixels(loaded, image, given=SCENES[0].caption)
    assert given.trace.target_source == "given" and given.trace.caption == SCENES[0].caption
    with pytest.raises(UnknownTokens, match="'purple' at 2"):
        caption_pixels(loaded, image, given="a small purple circle")
    with pytest.raises(EmptyInput, match="the caption is empty"):
        caption_pixels(loaded, image, given="  ")
    with pytest.raises(OverLimit, match="caption has 15 steps; the limit is 12"):
        caption_pixels(loaded, image, given=" ".join(["a"] * 14))
    with pytest.raises(OverLimit, match="beam has 9"):
        caption_pixels(loaded, image, beam=9)
    with pytest.raises(WrongModelKind, match="captions images: diff compares"):
        family_of("caption").lab_model(loaded, None)


def test_a_caption_card_that_does_not_fit_is_refused_by_name(tmp_path: Path) -> None:
    model = make_model("lstm", seed=2)
    data = card_for(model, "lstm").to_json()
    bad_words = {**data, "caption": {**data["caption"], "words": {"tokens": ["a", "b", "c", "d"]}}}
    with pytest.raises(ModelFileError, match="words start <unk>, <s>, </s>"):
        card_from_json(bad_words)
    with pytest.raises(ModelFileError, match="channels"):
        card_from_json({**data, "caption": {**data["caption"], "channels": [4, 6]}})
    with pytest.raises(ModelFileError, match=r"caption .*unexpected keyword argument 'colour'"):
        card_from_json({**data, "caption": {**data["caption"], "colour": 1}})
    save_model(tmp_path, card_from_json({**data, "num_layers": 2}), model)
    with pytest.raises(ModelFileError, match="one layer, one direction"):
        load_model(tmp_path, "shapes-test")
    save_model(tmp_path, card_from_json({**data, "hidden_size": 13}), model)
    with pytest.raises(ModelFileError, match="has shape"):
        load_model(tmp_path, "shapes-test")
