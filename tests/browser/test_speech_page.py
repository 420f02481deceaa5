"""The speech page in real Chromium against a real `unrolled serve`: a WAV from Chromium's fake microphone (espeak-ng
saying a number no example clip says) recorded by the page, encoded as a WAV in JS and transcribed; a WAV uploaded;
the transcript sent to German. Each transcript on the page is checked against the REST API's for the very WAV the
page sent (the request's body, captured), never a string written here.

The zoo is built here (until the trained speech models land, and so that the test does not depend on them): a small
bidirectional GRU trained with CTC until it transcribes an example clip exactly (so the German test has words the
translation model reads; the first clip, to keep it quick), the zoo's own translation model beside it, and the
clips in speech-examples/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
import torch.nn.functional as F
from playwright.sync_api import Browser, Page, Playwright, Request

from app.engine.card import ModelCard, save_model
from app.engine.speech.audio import wav_features
from app.engine.speech.card import SpeechCard, config
from app.engine.speech.lexicon import Lexicon
from app.engine.speech.model import SpeechModel
from app.training.tasks.numbers import translator
from app.web.config import ROOT, Settings
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, Recorder, assert_clean, open_tour_scene, record, screenshot
from tests.browser.test_text_sizes import presenter_small_text
from tests.conftest import LiveServer

ESPEAK = shutil.which("espeak-ng")
ALPHABET = " -adefghilnorstuvwxyz"  # the letters of English number words, the space and num2words' hyphen
EXAMPLES = ["two thousand three hundred", "forty two", "seven hundred and five"]
TRAIN_LIMIT = 3000  # Adam steps at most: the fixture fails (saying so) if the model has not learnt the clips by then
SPOKEN = "six hundred and eighteen"  # the fake microphone's number: no example says it
UPLOADED = "ninety one"  # the uploaded WAV's
GERMAN = "numbers-gru-attention"
SCENE_TITLE = "Applications: speech to text"
SCENE = {
    "title": SCENE_TITLE,
    "caption": "The network hears log-mel frames, 30 ms a step, and writes a letter or a blank at each; CTC's collapse "
    "merges repeats and drops blanks. Press L to hear the clip, the cursor following it.",
    "view": "transcribe",
    "model": "speech-gru",
    "input": EXAMPLES[1],
    "panels": ["sound", "unrolled", "posteriors", "text"],
}
TOUR = {"title": "Speech", "description": "A speech model listening.", "scenes": [SCENE]}


def espeak(text: str, path: Path, voice: str = "en-us", speed: int = 150) -> bytes:
    subprocess.run([str(ESPEAK), "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path.read_bytes()


def train(card: ModelCard, clips: dict[str, bytes]) -> SpeechModel:
    """A speech model trained with CTC on the clips until its greedy text is each clip's words (at most TRAIN_LIMIT
    steps; fixed seed; one thread, as the server's tests share the cores)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return learnt(SpeechModel(config(card)), clips)
    finally:
        torch.set_num_threads(threads)


def learnt(model: SpeechModel, clips: dict[str, bytes]) -> SpeechModel:
    data = [(model.steps(wav_features(wav)), torch.tensor([ALPHABET.index(ch) + 1 for ch in text]))
            for text, wav in clips.items()]  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(TRAIN_LIMIT):
        opt.zero_grad()
        loss = torch.stack([
            F.ctc_loss(model(x[None]).log_softmax(-1).transpose(0, 1), y[None], torch.tensor([len(x)]),
                       torch.tensor([len(y)])) for x, y in data
        ]).sum()  # fmt: skip
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        if step % 50 == 49 and all(greedy(model, x) == text for (x, _), text in zip(data, clips, strict=True)):
            return model
    raise AssertionError(f"the test's speech model did not learn its {len(clips)} clips in {TRAIN_LIMIT} steps")


@torch.no_grad()
def greedy(model: SpeechModel, x: torch.Tensor) -> str:
    path = model(x[None])[0].argmax(-1).tolist()
    return "".join(ALPHABET[c - 1] for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1]))


@pytest.fixture(scope="module")
def speech_zoo(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    folder: Path = tmp_path_factory.mktemp("speech-zoo")
    examples = folder / "speech-examples"
    examples.mkdir()
    clips = {text: espeak(text, examples / f"{i:02d}-{text.replace(' ', '-')}.wav")
             for i, text in enumerate(EXAMPLES, 1)}  # fmt: skip
    card = ModelCard(id="speech-gru", task="speech", cell="gru", kind="transcribe", hidden_size=48, num_layers=1,
                     vocab={"level": "value", "tokens": ["<unk>"]}, bidirectional=True,
                     block=SpeechCard(alphabet=ALPHABET, lexicon=Lexicon.of(EXAMPLES)))  # fmt: skip
    save_model(folder, card, train(card, {EXAMPLES[0]: clips[EXAMPLES[0]]}))  # the German test's clip
    for suffix in (".json", ".safetensors"):
        shutil.copy(ROOT / "models" / f"{GERMAN}{suffix}", folder / f"{GERMAN}{suffix}")
    (folder / "checkpoints").mkdir()
    for kept in (ROOT / "models" / "checkpoints").glob(f"{GERMAN}-*.safetensors"):  # its card names them
        shutil.copy(kept, folder / "checkpoints" / kept.name)
    tours = folder / "tours"
    tours.mkdir()
    (tours / "speech.json").write_text(json.dumps(TOUR), encoding="utf-8")
    with LiveServer(settings.model_copy(update={"models_dir": folder}), UNROLLED_TOUR_DIR=str(tours)) as live:
        yield live


def api_transcript(live: LiveServer, wav: bytes, key: str = "transcript") -> str:
    """The REST answer's served transcript (the lexicon search's), or with key "text" its greedy collapse."""
    r = httpx.post(f"{live.url}/api/models/speech-gru/transcribe", content=wav,
                   headers={"Content-Type": "audio/wav"}, timeout=120)  # fmt: skip
    assert r.status_code == 200, r.text
    text: str = r.json()[key]
    return text


def capture(page: Page, into: list[Request]) -> None:
    page.on("request", lambda r: into.append(r) if r.url.split("?")[0].endswith("/transcribe") else None)


def transcript_on_page(page: Page) -> str:
    text: str = page.evaluate("() => document.getElementById('transcript').dataset.text")
    return text


def wait_transcribed(page: Page, count: int) -> None:
    page.wait_for_function(f"() => (window.__unrolled?.loaded ?? 0) >= {count}")


@pytest.fixture
def microphone(playwright: Playwright, tmp_path: Path) -> Iterator[Browser]:
    """A browser of its own whose microphone is espeak-ng saying SPOKEN (Chromium's fake capture device)."""
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed")
    wav = tmp_path / "spoken.wav"
    espeak(SPOKEN, wav, voice="en-gb", speed=140)
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            "--autoplay-policy=no-user-gesture-required", f"--use-file-for-fake-audio-capture={wav}"]  # fmt: skip
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
    yield b
    b.close()


def open_page(browser: Browser, live: LiveServer, recorder: Recorder) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.grant_permissions(["microphone"], origin=live.url)
    page = context.new_page()
    page.set_default_timeout(120_000)  # a guard against a hang: every wait is for a condition
    record(page, recorder)
    page.goto(f"{live.url}/models/speech-gru")
    wait_transcribed(page, 1)  # the first example clip
    return page


def test_the_microphone_is_recorded_sent_as_a_wav_and_its_transcript_shown(
    microphone: Browser, speech_zoo: LiveServer, recorder: Recorder
) -> None:
    page = open_page(microphone, speech_zoo, recorder)
    requests: list[Request] = []
    capture(page, requests)
    page.keyboard.press("r")
    page.wait_for_function("() => window.__unrolled.recording === true")
    page.wait_for_function("() => (window.__unrolled.recordedSeconds ?? 0) >= 3")  # the fake file says it in ~2 s
    page.keyboard.press("r")
    wait_transcribed(page, 2)
    assert len(requests) == 1 and requests[0].post_data_buffer is not None
    sent = requests[0].post_data_buffer
    assert sent[:4] == b"RIFF" and sent[8:16] == b"WAVEfmt "
    assert int.from_bytes(sent[24:28], "little") == 16000 and int.from_bytes(sent[34:36], "little") == 16
    assert requests[0].headers["content-type"] == "audio/wav"
    shown = transcript_on_page(page)
    assert shown == api_transcript(speech_zoo, sent)
    assert page.evaluate("() => window.__unrolled.sent.source") == "your recording"
    screenshot(page, "speech-microphone-1280x720")
    assert presenter_small_text(page) == []
    assert_clean(recorder)


def test_an_uploaded_wav_is_transcribed_as_the_api_transcribes_it(
    browser: Browser, speech_zoo: LiveServer, recorder: Recorder, tmp_path: Path
) -> None:
    wav = tmp_path / "ninety-one.wav"
    espeak(UPLOADED, wav, voice="en-us", speed=160)
    page = open_page(browser, speech_zoo, recorder)
    requests: list[Request] = []
    capture(page, requests)
    page.set_input_files("#upload", str(wav))
    wait_transcribed(page, 2)
    assert requests[0].post_data_buffer == wav.read_bytes()  # the file itself, as it was
    assert transcript_on_page(page) == api_transcript(speech_zoo, wav.read_bytes())
    assert page.evaluate("() => window.__unrolled.sent.source") == "upload: ninety-one.wav"
    # L plays it from the cursor (Web Audio, the key the gesture), the cursor following the sound's clock
    page.keyboard.press("Home")
    page.wait_for_function("() => window.__unrolled.cursor.t === 0")
    page.keyboard.press("l")
    page.wait_for_function("() => window.__unrolled.listened === 1 && window.__unrolled.cursor.t >= 5")
    assert_clean(recorder)


def test_a_file_that_is_not_a_wav_is_refused_beside_the_input(
    browser: Browser, speech_zoo: LiveServer, recorder: Recorder, tmp_path: Path
) -> None:
    bogus = tmp_path / "notes.wav"
    bogus.write_text("these are my lecture notes, not a sound")
    page = open_page(browser, speech_zoo, recorder)
    page.set_input_files("#upload", str(bogus))
    page.wait_for_function("() => (window.__unrolled.failed ?? 0) >= 1")
    r = httpx.post(f"{speech_zoo.url}/api/models/speech-gru/transcribe", content=bogus.read_bytes(),
                   headers={"Content-Type": "audio/wav"})  # fmt: skip
    assert 400 <= r.status_code < 500
    assert page.locator("#input-error").inner_text() == r.json()["message"]
    recorder.errors = [e for e in recorder.errors if "status of 4" not in e]  # the refused request's console line
    assert_clean(recorder)


def test_the_transcript_becomes_german_as_the_translation_api_translates_it(
    browser: Browser, speech_zoo: LiveServer, recorder: Recorder
) -> None:
    page = open_page(browser, speech_zoo, recorder)
    assert transcript_on_page(page) == "two thousand three hundred"  # the first clip, which the model learnt
    translated: list[Request] = []
    page.on("request", lambda r: translated.append(r) if r.url.endswith("/translate") else None)
    page.keyboard.press("g")
    page.wait_for_function("() => window.__unrolled.german?.output")
    english = json.loads(translated[0].post_data or "{}")["text"]
    # what the translation model was trained on: num2words' English, its comma after "thousand" put back
    assert english == translator()(2300, "en")
    r = httpx.post(f"{speech_zoo.url}/api/models/{GERMAN}/translate", json={"text": english, "beam": 1}, timeout=60)
    assert r.status_code == 200, r.text
    assert page.locator("#german-output").inner_text() == r.json()["output"]
    screenshot(page, "speech-german-1280x720")
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.evaluate("() => window.scrollTo(0, 0)")
    screenshot(page, "speech-1920x1080")
    assert_clean(recorder)


def test_a_tour_scene_transcribes_the_clip_its_input_names(
    browser: Browser, speech_zoo: LiveServer, recorder: Recorder
) -> None:
    with open_tour_scene(browser, speech_zoo, recorder, "speech", SCENE_TITLE) as page:
        clip = next((Path(speech_zoo.env["UNROLLED_MODELS_DIR"]) / "speech-examples").glob("02-*.wav")).read_bytes()
        expected = api_transcript(speech_zoo, clip, "text")  # the tour teaches the collapse: its text is the greedy one
        assert page.evaluate("() => window.__unrolled.transcript") == expected
        # the collapse panel reads the greedy path up to the cursor: at the last step, the whole text
        page.keyboard.press("End")
        page.wait_for_function("(t) => document.querySelector('.collapse-text')?.dataset.text === t", arg=expected)
        titles = page.locator(".tour-panel h2").all_inner_texts()
        assert len(titles) == len(SCENE["panels"])
        assert titles[1] == "The unrolled network over frames, around the cursor"
        screenshot(page, "speech-tour-1280x720")
        assert_clean(recorder)


def test_the_example_clips_are_listed_and_served_and_an_unknown_one_is_named(speech_zoo: LiveServer) -> None:
    listed = httpx.get(f"{speech_zoo.url}/api/speech-examples").json()["examples"]
    assert [e["words"] for e in listed] == EXAMPLES
    folder = Path(speech_zoo.env["UNROLLED_MODELS_DIR"]) / "speech-examples"
    first = httpx.get(f"{speech_zoo.url}/api/speech-examples/{listed[0]['name']}")
    assert first.status_code == 200 and first.content == (folder / listed[0]["name"]).read_bytes()
    for name in ("99-no-such-clip.wav", "speech-gru.json", "notes.txt"):
        r = httpx.get(f"{speech_zoo.url}/api/speech-examples/{name}")
        assert r.status_code == 404
        assert r.json()["message"].startswith(f"no example clip '{name}'") and listed[0]["name"] in r.json()["message"]
    assert httpx.get(f"{speech_zoo.url}/api/speech-examples/..%2Fspeech-gru.json").status_code == 404  # no way out
