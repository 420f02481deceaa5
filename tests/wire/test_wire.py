"""The wire layer sends every array under its own name: the REST body's states and gates are the engine's,
value for value (float32 JSON reads back exactly), for every layer, cell type and gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.engine.family import load_model
from app.engine.token.trace import trace


@pytest.mark.parametrize("model_id", ["chars-lstm", "chars-gru", "chars-rnn"])
def test_the_rest_body_holds_each_state_and_gate_under_its_own_name(
    client: TestClient, models_dir: Path, model_id: str
) -> None:
    text = "the cat sat on the mat"
    body = client.post(f"/api/models/{model_id}/trace", json={"text": text}).json()
    tr = trace(load_model(models_dir, model_id), text)
    assert len(body["layers"]) == len(tr.layers)
    for sent, layer in zip(body["layers"], tr.layers, strict=True):
        assert np.array_equal(np.array(sent["hidden"], np.float32), layer.hidden)
        if layer.cell_state is None:
            assert sent["cell_state"] is None
        else:
            assert np.array_equal(np.array(sent["cell_state"], np.float32), layer.cell_state)
        assert list(sent["gates"]) == list(layer.gates)  # torch.nn's order
        for name, gate in layer.gates.items():
            assert np.array_equal(np.array(sent["gates"][name], np.float32), gate), name
