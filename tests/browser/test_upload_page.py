"""The upload form and the Delete button in a real browser, against a real server with an admin token: a
bidirectional LSTM made by a plain torch script (its own key names) goes from the form to its own page and is
deleted again; a wrong token shows the server's 401 message; the token stays in the tab's sessionStorage only;
without a token configured the page says uploads are off and offers no form."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from playwright.sync_api import Page

from app.web.config import Settings
from tests.browser.conftest import Recorder, screenshot, wait_loaded
from tests.browser.test_audience_input import type_input
from tests.conftest import LiveServer, write_model
from tests.zoo.test_import import train_char_model, train_set_model
from tests.zoo.test_import_series import train_weather_model

TOKEN = "browser-admin-token"
MODEL = "my-bilstm"
LIMIT = 400_000  # the server's max_upload_bytes: the bidirectional LSTM's files are well under it


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    models = tmp_path_factory.mktemp("upload-models")
    write_model(models, "chars-gru", "gru", "next_token")  # one of "the zoo": read-only, no Delete button
    settings = Settings(models_dir=models, max_steps=200, max_generate=10, max_concurrent=2, send_timeout=5.0)
    with LiveServer(settings, UNROLLED_ADMIN_TOKEN=TOKEN, UNROLLED_MAX_UPLOAD_BYTES=str(LIMIT)) as live:
        yield live


@pytest.fixture(scope="module")
def bilstm_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-layer bidirectional LSTM as its script saves it: torch.save of a state dict (emb, lstm, fc) and a
    {token: id} vocabulary with <unk> last."""
    src = tmp_path_factory.mktemp("bilstm-src")
    model, vocab = train_char_model()
    torch.save(model.state_dict(), src / "char.pt")
    (src / "char-vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    return {"weights": src / "char.pt", "vocab": src / "char-vocab.json"}


def assert_clean(recorder: Recorder, refused: tuple[int, ...] = ()) -> None:
    """No console error but Chromium's own note of each refusal the test asked for (a 401, a 404 page), no page
    error, nothing fetched from off the machine."""
    note = "console: Failed to load resource: the server responded with a status of {}"
    expected = [e for e in recorder.errors if any(e.startswith(note.format(status)) for status in refused)]
    assert [e for e in recorder.errors if e not in expected] == [], recorder.errors
    assert len(expected) == len(refused), recorder.errors
    assert recorder.outside() == [], recorder.outside()


def fill_form(page: Page, files: dict[str, Path], model_id: str, token: str) -> None:
    page.set_input_files("#upload-weights", str(files["weights"]))
    page.set_input_files("#upload-vocab", str(files["vocab"]))
    page.fill("#upload-id", model_id)
    page.fill("#upload-token", token)


def test_an_uploaded_bidirectional_lstm_is_served_and_deleted(
    page: Page, recorder: Recorder, admin_server: LiveServer, bilstm_files: dict[str, Path]
) -> None:
    url = admin_server.url
    page.goto(url + "/")
    page.click("#own-model #upload-link")  # the home page's "Your own model" panel leads to the form
    page.wait_for_url(url + "/upload")
    assert page.locator("#uploads-off").count() == 0

    # a wrong token: the server's own 401 message, word for word
    fill_form(page, bilstm_files, MODEL, "not-the-token")
    page.click("#upload-submit")
    message = page.locator("#upload-message")
    message.wait_for(state="visible")
    wrong = httpx.post(url + "/api/models", headers={"Authorization": "Bearer wrong"}, files={"id": (None, "x")})
    assert wrong.status_code == 401
    assert message.inner_text() == f"401: {wrong.json()['message']}"
    assert page.locator("#upload-result").is_hidden()
    screenshot(page, "upload-wrong-token", full_page=True)

    page.fill("#upload-token", TOKEN)
    page.click("#upload-submit")
    link = page.locator("#upload-link")
    link.wait_for(state="visible")
    assert page.locator("#upload-message").is_hidden()
    assert link.get_attribute("href") == f"/models/{MODEL}"
    assert "a 2-layer bidirectional LSTM (12 hidden units)" in page.inner_text("#upload-summary")
    matched = page.inner_text("#upload-matched")
    assert "lstm.* → rnn.*" in matched and "fc.* → head.*" in matched  # the importer's report of its own key names
    screenshot(page, "upload-done", full_page=True)
    # the token is the tab's alone: in sessionStorage, never in localStorage or the URL
    assert page.evaluate("() => sessionStorage.getItem('unrolled.admin-token')") == TOKEN
    assert page.evaluate("() => Object.values(localStorage).join('')").find(TOKEN) == -1
    assert TOKEN not in page.url
    assert page.get_attribute("#upload-token", "name") is None  # no form submission could ever carry it
    # the server serves it
    card = httpx.get(f"{url}/api/models/{MODEL}").json()
    assert card["bidirectional"] is True and card["task"] == "imported"

    link.click()
    page.wait_for_url(f"{url}/models/{MODEL}")
    wait_loaded(page)
    labels = page.locator("#unrolled .unrolled-row").all_inner_texts()
    assert labels == ["layer 1 →", "layer 1 ← reverse", "layer 2 →", "layer 2 ← reverse"]
    assert TOKEN not in page.url

    # Delete: a confirm step (the token already there for this tab), then the model is gone
    page.click("#delete-open")
    dialog = page.locator("#delete-dialog")
    dialog.wait_for(state="visible")
    assert page.input_value("#delete-token") == TOKEN
    assert page.get_attribute("#delete-token", "name") is None
    screenshot(page, "upload-delete-confirm")
    assert httpx.get(f"{url}/api/models/{MODEL}").status_code == 200  # opening the dialog deleted nothing
    page.click("#delete-confirm")
    page.wait_for_function("() => window.__unrolled.deleted === 'my-bilstm'")
    assert "was deleted" in page.inner_text("#delete-message")
    assert httpx.get(f"{url}/api/models/{MODEL}").status_code == 404
    response = page.goto(f"{url}/models/{MODEL}")
    assert response is not None and response.status == 404
    assert_clean(recorder, refused=(401, 404))


def test_an_uploaded_vocabulary_without_an_unknown_token_names_what_it_cannot_read(
    page: Page, recorder: Recorder, admin_server: LiveServer, tmp_path: Path
) -> None:
    """A next-character model over set(text) (no <unk>) goes from the form to its page, which reads its own
    characters; typed text with characters outside it is refused, and the status line names each and its
    position, as the server's 422 does."""
    model, vocab = train_set_model()
    torch.save(model.state_dict(), tmp_path / "set.pt")
    (tmp_path / "set-vocab.json").write_text(json.dumps(vocab))
    url = admin_server.url
    page.goto(url + "/upload")
    fill_form(page, {"weights": tmp_path / "set.pt", "vocab": tmp_path / "set-vocab.json"}, "their-set-gru", TOKEN)
    page.click("#upload-submit")
    link = page.locator("#upload-link")
    link.wait_for(state="visible")
    assert "no unknown token" in page.inner_text("#upload-matched")
    link.click()
    page.wait_for_url(f"{url}/models/their-set-gru")
    wait_loaded(page)
    assert page.locator("#unknown-note").count() == 0  # its example is its own characters
    type_input(page, "the fox sat")
    # A refused input is named beside the input (static/js/inputerror.js), not in the status toast.
    said = page.locator("#input-error")
    page.wait_for_function("() => document.getElementById('input-error')?.textContent.includes(\"'f' at 4\")")
    refused = httpx.post(f"{url}/api/models/their-set-gru/trace", json={"text": "the fox sat"})
    assert refused.status_code == 422 and "'f' at 4, 'x' at 6" in refused.json()["message"]
    assert said.is_visible() and "'f' at 4, 'x' at 6" in said.inner_text()
    screenshot(page, "upload-no-unknown-token-refused")
    assert (
        httpx.delete(f"{url}/api/models/their-set-gru", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 204
    )
    assert_clean(recorder)


@pytest.mark.parametrize("problem", ["too-large", "bad-vocabulary"])
def test_a_refused_upload_shows_the_servers_message(
    page: Page,
    recorder: Recorder,
    admin_server: LiveServer,
    bilstm_files: dict[str, Path],
    tmp_path: Path,
    problem: str,
) -> None:
    """A body over max_upload_bytes (413) and a vocabulary that does not fit the embedding (422): the page shows
    the status and the message the server gives for the same files, and offers no link."""
    files = dict(bilstm_files)
    if problem == "too-large":
        files["weights"] = tmp_path / "huge.safetensors"
        files["weights"].write_bytes(b"\0" * (LIMIT + 1))
    else:
        files["vocab"] = tmp_path / "short-vocab.json"
        files["vocab"].write_text(json.dumps(["<unk>", "a", "b"]))
    parts = [(name, (path.name, path.read_bytes())) for name, path in files.items()]
    answer = httpx.post(
        f"{admin_server.url}/api/models",
        files=parts,
        data={"id": "refused"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    status = 413 if problem == "too-large" else 422
    assert answer.status_code == status
    page.goto(admin_server.url + "/upload")
    assert page.inner_text("#upload-limit").startswith("Up to 400 kB in all")  # LIMIT, said before it is hit
    fill_form(page, files, "refused", TOKEN)
    page.click("#upload-submit")
    message = page.locator("#upload-message")
    message.wait_for(state="visible")
    assert message.inner_text() == f"{status}: {answer.json()['message']}"
    assert page.locator("#upload-result").is_hidden() and page.locator("#upload-progress").is_hidden()
    assert httpx.get(f"{admin_server.url}/api/models/refused").status_code == 404  # nothing was written
    screenshot(page, f"upload-refused-{problem}", full_page=True)
    assert_clean(recorder, refused=(status,))


def test_a_series_model_uploads_without_a_vocabulary(
    page: Page, recorder: Recorder, admin_server: LiveServer, tmp_path: Path
) -> None:
    """A forecaster reading two numbers a step (no embedding): the form's series fields say what they are, its page
    is the series page, with a Delete button of its own."""
    weights = tmp_path / "weather.pt"
    torch.save(train_weather_model().state_dict(), weights)
    page.goto(admin_server.url + "/upload")
    page.set_input_files("#upload-weights", str(weights))
    page.fill("#upload-id", "my-weather")
    page.click("#upload-series summary")
    for field, value in {
        "features": "rain,temp",
        "mean": "3,15",
        "std": "2,5",
        "units": "mm, °C",
        "step": "day",
    }.items():
        page.fill(f"#upload-{field}", value)
    page.fill("#upload-token", TOKEN)
    page.click("#upload-submit")
    page.locator("#upload-link").wait_for(state="visible")
    card = httpx.get(f"{admin_server.url}/api/models/my-weather").json()
    assert (
        card["kind"] == "series" and card["series"]["features"] == ["rain", "temp"] and card["series"]["step"] == "day"
    )
    page.click("#upload-link")
    page.wait_for_url(f"{admin_server.url}/models/my-weather")
    assert page.evaluate("() => document.body.dataset.page") == "series"
    page.click("#delete-open")
    page.click("#delete-confirm")  # the token is this tab's already
    page.wait_for_function("() => window.__unrolled.deleted === 'my-weather'")
    assert httpx.get(f"{admin_server.url}/api/models/my-weather").status_code == 404
    assert_clean(recorder)


def test_a_zoo_model_has_no_delete_button(page: Page, recorder: Recorder, admin_server: LiveServer) -> None:
    page.goto(admin_server.url + "/models/chars-gru?text=hello")
    wait_loaded(page)
    assert page.locator("#delete-open").count() == 0
    assert_clean(recorder)


def test_without_an_admin_token_the_page_says_uploads_are_off(page: Page, recorder: Recorder, live: LiveServer) -> None:
    page.goto(live.url + "/")
    assert "uploads are off" in page.inner_text("#own-model")
    page.click("#own-model #upload-link")
    page.wait_for_url(live.url + "/upload")
    off = page.locator("#uploads-off")
    assert off.is_visible() and "Uploads are off" in off.inner_text() and "UNROLLED_ADMIN_TOKEN" in off.inner_text()
    assert page.locator("form#upload-form").count() == 0
    assert page.locator("button[type=submit], input[type=file], input[type=password]").count() == 0
    screenshot(page, "upload-off")
    assert_clean(recorder)
