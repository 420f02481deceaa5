"""Shared fixtures: a folder of small real models, the app, a TestClient, and a real uvicorn on loopback."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.engine.card import Checkpoint, ModelCard, save_model, save_weights
from app.engine.token.card import TokenCard, config
from app.engine.token.model import SeqModel
from app.engine.translation.card import TranslationCard
from app.engine.translation.model import BOS, EOS, EOS_ID, EQUATIONS, Seq2SeqConfig, Seq2SeqModel
from app.engine.vocab import UNK, Vocab
from app.web.app import create_app
from app.web.config import ROOT, Settings

# One torch thread in the suite, whatever order its tests run in: it runs on 2 cores beside its own servers and other
# work, and OpenMP threads that outnumber the free cores spin-wait on each other (a 1 s training test took 77 s under
# load on 2 threads, 7 s on 1). In this process, and in every app it makes or starts (Settings reads
# UNROLLED_TORCH_THREADS; an app's start sets torch's threads from it), as LiveServer's servers always had.
os.environ.setdefault("UNROLLED_TORCH_THREADS", "1")
torch.set_num_threads(int(os.environ["UNROLLED_TORCH_THREADS"]))

LETTERS = [UNK, *"abcdefghijklmnopqrstuvwxyz .,"]
WORDS = [UNK, "a", "good", "bad", "film", "great", "awful", "plot", "not", "very", "."]
NUMBER_WORDS = [UNK, "one", "two", "three", "twenty", "hundred", "and", "-"]
TARGET_LETTERS = [UNK, BOS, EOS, *"eindrzwhut"]


def write_model(folder: Path, model_id: str, cell: str, kind: str, layers: int = 1, hidden: int = 16) -> ModelCard:
    """A real model file and card, with random weights (seeded) and two checkpoints."""
    word = kind == "classify"
    card = ModelCard(
        id=model_id,
        task="test-sentiment" if word else "test-chars",
        cell=cell,  # type: ignore[arg-type]
        kind=kind,
        hidden_size=hidden,
        num_layers=layers,
        vocab={"level": "word" if word else "char", "case": "lower", "tokens": WORDS if word else LETTERS},
        block=TokenCard(
            embed_size=8,
            labels=["negative", "positive"] if word else None,
            positive_label="positive" if word else None,
        ),
        description=f"a test {cell}",
        examples=[{"text": "a good film" if word else "hello world", "note": "test"}],
        metrics={"accuracy": 0.5},
        curve=[{"step": 0, "loss": 1.0}, {"step": 10, "loss": 0.5}],
        seed=1,
    )
    torch.manual_seed(sum(map(ord, model_id)))
    for name in ("0", "100"):
        model = SeqModel(config(card))
        path = f"checkpoints/{model_id}-{name}.safetensors"
        (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
        save_weights(model, folder / path)
        card.checkpoints.append(Checkpoint(name=name, step=int(name), file=path))
    save_model(folder, card, model)
    return card


def write_translation_model(folder: Path, model_id: str, cell: str, attention: bool, layers: int = 1) -> ModelCard:
    """A real encoder–decoder file and card (number words → letters), with random weights (seeded) whose outputs
    end within max_length, and one checkpoint."""
    vocab = Vocab(tokens=tuple(NUMBER_WORDS), level="word", case="lower")
    target = Vocab(tokens=tuple(TARGET_LETTERS), level="char")
    cfg = Seq2SeqConfig(cell, len(NUMBER_WORDS), len(TARGET_LETTERS), 8, 16, layers, 12 if attention else 0)  # type: ignore[arg-type]
    card = ModelCard(
        id=model_id, task="test-numbers", cell=cfg.cell, kind="translate", hidden_size=16,
        num_layers=layers, vocab=vocab.to_json(), description=f"a test {cell}",
        block=TranslationCard(embed_size=8, target_vocab=target.to_json(), attention=attention,
                              attention_size=cfg.attention_size, equations=EQUATIONS, max_length=24),
        examples=[{"text": "twenty-one", "note": "test"}], metrics={"exact_match": 0.5}, seed=1,
    )  # fmt: skip
    torch.manual_seed(sum(map(ord, model_id)))
    model = Seq2SeqModel(cfg)
    with torch.no_grad():
        model.head.bias[EOS_ID] += 2.0  # outputs that end within max_length
    path = f"checkpoints/{model_id}-0.safetensors"
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_weights(Seq2SeqModel(cfg), folder / path)
    card.checkpoints.append(Checkpoint(name="0", step=0, file=path))
    save_model(folder, card, model)
    return card


# The suite's tiers (`make test-fast` runs what is in none of them; `make test`, and so CI, runs everything).
TIERS = {
    "browser": "drives a real Chromium (tests/browser/)",
    "live": "starts a real server or another process (uvicorn, the CLI, a mount)",
    "claims": "measures the lessons on the zoo's own trained models",
    "slow": "takes more than a few seconds on its own",
}
# A test is live when it (not a fixture it asks for by name) starts a process: these are the ways the suite does.
STARTS_A_PROCESS = re.compile(r"LiveServer\(|serve_builtin_tour\(|subprocess\.|Popen\(")


def pytest_configure(config: pytest.Config) -> None:
    for name, meaning in TIERS.items():
        config.addinivalue_line("markers", f"{name}: {meaning}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tiers from what a test does, so a new test lands in the right one without anyone remembering to mark it:
    everything under tests/browser/ is browser and live; a test whose own code, a fixture of the suite's it uses,
    or a helper of its module they call starts a process is live. `claims` and `slow` are marked by hand."""
    for item in items:
        if "browser" in item.path.parts:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.live)
            continue
        if any(_starts_a_process(f) for f in _own_code(item)):
            item.add_marker(pytest.mark.live)


def _own_code(item: pytest.Item) -> Iterator[Any]:
    """The test function and every fixture function of the suite's it uses (the whole closure)."""
    function = getattr(item, "function", None)
    if function is not None:
        yield function
    info = getattr(item, "_fixtureinfo", None)
    for defs in info.name2fixturedefs.values() if info is not None else ():
        for fixturedef in defs:
            if fixturedef.baseid and inspect.isfunction(fixturedef.func):
                yield fixturedef.func


@functools.cache
def _starts_a_process(function: Any) -> bool:
    """Whether a function's code, or that of a helper of the suite's it calls (a `server()` that returns a
    LiveServer, a `run_import()` of the CLI, a LiveServer of its own), however deep, starts a process."""
    seen, todo = {function}, [function]
    while todo:
        source = inspect.getsource(todo.pop())
        if STARTS_A_PROCESS.search(source):
            return True
        module = inspect.getmodule(function)
        for name, helper in vars(module).items():
            own = (inspect.isfunction(helper) or inspect.isclass(helper)) and helper.__module__.startswith("tests")
            if own and helper not in seen and re.search(rf"\b{name}\(", source):
                seen.add(helper)
                todo.append(helper)
    return False


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    write_model(folder, "chars-lstm", "lstm", "next_token")
    write_model(folder, "chars-gru", "gru", "next_token", layers=2)
    write_model(folder, "chars-rnn", "rnn", "next_token")
    write_model(folder, "words-lstm", "lstm", "classify")
    write_translation_model(folder, "numbers-gru-attention", "gru", attention=True)
    write_translation_model(folder, "numbers-lstm-attention", "lstm", attention=True, layers=2)
    write_translation_model(folder, "numbers-gru", "gru", attention=False)
    return folder


@pytest.fixture(scope="session")
def settings(models_dir: Path) -> Settings:
    return Settings(models_dir=models_dir, max_steps=3000, max_generate=2000, max_concurrent=4, send_timeout=5.0)


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    """A real uvicorn process serving the app on a loopback port, configured by environment variables."""

    def __init__(self, settings: Settings, **env: str) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "UNROLLED_MODELS_DIR": str(settings.models_dir),
            "UNROLLED_MAX_STEPS": str(settings.max_steps),
            "UNROLLED_MAX_GENERATE": str(settings.max_generate),
            "UNROLLED_MAX_CONCURRENT": str(settings.max_concurrent),
            "UNROLLED_SEND_TIMEOUT": str(settings.send_timeout),
            "UNROLLED_TORCH_THREADS": "1",  # the tests share the cores with the server: no OpenMP spin-waits
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        # The real entry point (`unrolled serve`), so its uvicorn settings (e.g. ws_max_size) are what is tested.
        cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env={"UNROLLED_LOG_LEVEL": "warning", **self.env}, cwd=ROOT)
        deadline = time.monotonic() + 180  # a guard against a hang, not a speed target: a loaded machine starts slowly
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.__exit__()
                raise RuntimeError("uvicorn did not become ready")
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="session")
def live(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as server:
        yield server


T = TypeVar("T")


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on a thread of its own: the browser tests' Playwright (its sync API) keeps an event loop running
    on the main thread for the whole session, where asyncio.run refuses to start ("cannot be called from a running
    event loop"), so a test run after them in the same session would fail only in the full suite."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
