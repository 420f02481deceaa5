"""The family registry: every card kind has one family, cards are read in their current and their flat legacy form,
and no module outside a family's own files asks what kind a model is."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import grimp
import pytest
import torch

from app.engine.card import LEGACY_FLAT_KEYS, ModelCard, card_text
from app.engine.errors import ModelFileError
from app.engine.family import FAMILIES, KINDS, card_from_json, family_of, load_model

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
CARDS = sorted(p for p in MODELS.glob("*.json"))

# The checks that branched on a model's kind before the registry (issue 24). They may appear only in a family's own
# files: its engine folder, its web part (app/web/families/<family>.py), its wire layout (app/wire/<family>.py: the
# token family's records differ between next-token models and classifiers), its tour-scene rules
# (app/tour/families.py), and in the registries, which map kinds to families.
OLD_CHECKS = re.compile(
    r"is_translation\(|is_series\(|\.kind ==|\.kind !=|kind in \(|kind ==|"
    r"isinstance\(.*(SeqModel|Seq2SeqModel|SeriesModel)"
)
FAMILY_FILES = (
    "app/engine/token/",
    "app/engine/translation/",
    "app/engine/series/",
    "app/engine/family.py",
    "app/web/families/",
    "app/wire/token.py",
    "app/wire/translation.py",
    "app/wire/series.py",
    "app/tour/families.py",
)


def flat(data: dict[str, Any]) -> dict[str, Any]:
    """A current card file in the flat form of before: every family's field at the top level (the union's defaults
    where the family has none), a series' scaling under "series"."""
    family = family_of(data["kind"])
    block = data[family.name]
    old: dict[str, Any] = {"embed_size": 0, "labels": None, "positive_label": None, "target": "predicted",
                           "target_vocab": None, "attention": False, "attention_size": 0, "equations": "",
                           "max_length": 0, "series": None}  # fmt: skip
    assert set(old) == LEGACY_FLAT_KEYS
    common = {k: v for k, v in data.items() if k != family.name}
    return {**common, **old, **({"series": block} if family.name == "series" else block)}


def test_every_card_kind_of_the_zoo_has_a_family_whose_block_its_file_holds() -> None:
    kinds = set()
    for path in CARDS:
        data = json.loads(path.read_text())
        if "kind" not in data:  # the lab's recorded run (models/lab/ is not globbed) is no card
            continue
        family = family_of(data["kind"])
        kinds.add(data["kind"])
        assert family.name in data and data["kind"] in family.kinds, path.name
        assert not set(data) & (LEGACY_FLAT_KEYS - {family.name}), f"{path.name} is in the flat form"
    assert set(KINDS) == {"next_token", "classify", "translate", "series", "transcribe", "caption"}
    assert kinds == set(KINDS)  # every family has models in the zoo (speech and caption since issues 25 and 26)
    assert len({f.name for f in FAMILIES}) == len(FAMILIES)


@pytest.mark.parametrize("path", CARDS, ids=[p.stem for p in CARDS])
def test_a_committed_card_is_exactly_what_the_writer_writes(path: Path) -> None:
    """The zoo's cards are in the current form, as save_model (the trainer) and the importer write it."""
    assert card_text(card_from_json(json.loads(path.read_text()))) == path.read_text()


@pytest.mark.parametrize("model_id", ["charlm-gru", "memory-lstm", "numbers-gru-attention", "sunspots-rnn"])
def test_a_legacy_flat_card_loads_equal_to_its_current_form(model_id: str, tmp_path: Path) -> None:
    current = json.loads((MODELS / f"{model_id}.json").read_text())
    legacy = flat(current)
    assert card_from_json(legacy) == card_from_json(current)
    # a whole model in someone's folder, its card in the flat form: it loads, and is written back in the current
    (tmp_path / f"{model_id}.json").write_text(json.dumps(legacy))
    shutil.copy(MODELS / f"{model_id}.safetensors", tmp_path)
    for c in current["checkpoints"]:
        (tmp_path / c["file"]).parent.mkdir(exist_ok=True)
        shutil.copy(MODELS / c["file"], tmp_path / c["file"])
    old, new = load_model(tmp_path, model_id), load_model(MODELS, model_id)
    assert old.card == new.card and card_text(old.card) == (MODELS / f"{model_id}.json").read_text()
    assert all(torch.equal(v, new.model.state_dict()[k]) for k, v in old.model.state_dict().items())


def test_an_unknown_kind_is_a_model_file_error_naming_the_kinds_there_are() -> None:
    data = json.loads((MODELS / "charlm-gru.json").read_text())
    with pytest.raises(ModelFileError, match=r"kind 'speech' is not one of \['next_token', 'classify', 'translate', "):
        card_from_json({**data, "kind": "speech"})
    with pytest.raises(ModelFileError, match="kind None is not one of"):
        card_from_json({**data, "kind": None})


def test_a_card_without_its_block_or_with_an_unknown_field_is_refused_by_name() -> None:
    data = json.loads((MODELS / "numbers-gru.json").read_text())
    block = data.pop("translation")
    with pytest.raises(ModelFileError, match="a translate model needs its 'translation' block"):
        card_from_json(data)
    with pytest.raises(ModelFileError, match=r"unknown fields \['colour'\]"):
        card_from_json({**data, **block, "colour": "red"})
    with pytest.raises(ModelFileError, match=r"\['max_length'\] belong in its 'translation' block"):
        card_from_json({**data, "translation": block, "max_length": 9})  # which of the two is meant is unknown
    with pytest.raises(ModelFileError, match="needs its target_vocab"):
        card_from_json({**data, "translation": {**block, "target_vocab": None}})


def test_a_card_reads_its_own_block_type() -> None:
    for path in CARDS:
        card = card_from_json(json.loads(path.read_text()))
        assert isinstance(card, ModelCard) and isinstance(card.block, family_of(card.kind).block)


def test_no_module_outside_a_family_asks_a_model_its_kind() -> None:
    """A new family is a folder and a line in the registry: a check of the kind anywhere else is a missing method
    of the registry (app/engine/family.py, app/web/families/base.py)."""
    found = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(FAMILY_FILES):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if OLD_CHECKS.search(line):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert found == []


def test_no_module_of_the_app_imports_itself_through_others() -> None:
    """No import cycle, counting imports inside functions and under TYPE_CHECKING (the card loader and the three
    model modules were one before the registry: token/model.py ↔ translation/model.py ↔ series/model.py)."""
    graph = grimp.build_graph("app")
    cycles = [
        (module, other)
        for module in sorted(graph.modules)
        for other in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(importer=other, imported=module)
    ]
    assert cycles == []
