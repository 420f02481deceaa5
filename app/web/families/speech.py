"""The speech family on the web (kind "transcribe"): a WAV read, limited and costed before it is traced
(POST /api/models/{id}/transcribe's body, the stream's "transcribe" mode), its card as the API and the zoo's page
show it, its page (templates/speech.html, static/js/pages/speech.js) and the bundled example clips the page offers
(`router`: GET /api/speech-examples lists models/speech-examples/*.wav, GET /api/speech-examples/{name} serves one).
Every request of the other families' shapes (text or numbers in) is refused, saying what the model does. Its wire
layout is app/wire/speech.py's."""

from __future__ import annotations

import re
from math import gcd
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.engine.card import LoadedModel
from app.engine.errors import EmptyInput
from app.engine.family import family_of
from app.engine.speech.audio import HOP, SAMPLE_RATE, WINDOW, Audio, AudioTooShort, read_wav
from app.engine.speech.card import speech_card
from app.engine.speech.trace import trace_audio, transcript_ids
from app.web.capacity import cost
from app.web.config import Settings
from app.web.errors import error_body
from app.web.families.base import MediaWeb, PageChoice, TraceStream
from app.web.schemas.models import TranscribeRequest
from app.wire.speech import SpeechWire, estimate_bytes
from app.zoo.zoo import Zoo

# What a transcription costs beyond a trace's steps (app.web.capacity.cost's rule, in CPU seconds of one thread): the
# front end per second of audio read (resampling, the STFT, the mel filters), the prefix beam search per candidate
# (a kept prefix × a class, a step: Python's scalar loop), the trellis per step and label. Against the CPU time of
# the whole body (trace, wire, JSON) of a 2-layer bidirectional hidden-128 LSTM, torch_threads 1: a 1 s clip took
# 15 ms (estimated 22), 3 s at 44.1 kHz with a transcript 37 ms (68), 10 s at 48 kHz 141 ms (251) and with beam 32
# 245 ms (366): an estimate of 1.5–2× the measure, on the safe side of expensive_seconds.
FRONT_END_SECOND = 4e-3
BEAM_CANDIDATE = 1.2e-6
TRELLIS_CELL = 0.1e-6
# The lexicon search (a card with a lexicon) keeps up to twice the width and tries fewer classes a prefix than the
# plain search, counted as the plain search's candidates again; then each text it returns is scored by the CTC
# forward, a vectorised step per step: 2026-12-07, 8 beams over 50 steps took 2-5 ms in all.
RESCORE_STEP = 10e-6


def clip_frames(audio: Audio) -> int:
    """The log-mel frames the front end makes of a clip read (app/engine/speech/audio.py: resampled to 16 kHz,
    ceil(N · up / down) samples, then 1 + (N' − 400) // 160 frames); AudioTooShort under one window."""
    g = gcd(audio.rate, SAMPLE_RATE)
    samples = -(-len(audio.samples) * (SAMPLE_RATE // g) // (audio.rate // g))
    if samples < WINDOW:
        raise AudioTooShort(samples)
    return 1 + (samples - WINDOW) // HOP


def transcribe_seconds(loaded: LoadedModel, audio: Audio, steps: int, beam: int, labels: int) -> float:
    card = loaded.card
    block = speech_card(card)
    # the first layer reads stack × bands values a step, which the trace's multiply-adds count as 0 (no embedding)
    first = card.directions * cost.GATES[card.cell] * card.hidden_size * block.stack * block.front_end.bands
    trellis = steps * (2 * labels + 1) * TRELLIS_CELL
    searches = 1 if block.lexicon is None else 2
    rescore = 0.0 if block.lexicon is None else beam * steps * RESCORE_STEP
    return (
        cost.trace_seconds(loaded, steps)
        + steps * first * cost.TRACE_MAC
        + audio.seconds * FRONT_END_SECOND
        + searches * steps * beam * block.classes * BEAM_CANDIDATE
        + rescore
        + trellis
    )


class SpeechWeb(MediaWeb):
    name = "speech"
    reads = "audio"

    def transcribe_job(
        self, loaded: LoadedModel, wav: bytes, req: TranscribeRequest, settings: Settings
    ) -> TraceStream:
        """The WAV read and its limits checked now (a BadAudio names the problem; over MAX_SECONDS, 413), the
        transcript's characters too; the front end, the network, the decoding and the trellis run later, off the
        event loop."""
        block = speech_card(loaded.card)
        loaded.at(req.checkpoint)  # an unknown checkpoint: 404 before any work
        audio = read_wav(wav)
        frames = clip_frames(audio)
        steps = frames // block.stack
        if steps == 0:
            raise EmptyInput(
                f"the audio gives {frames} frame(s); one step of {loaded.card.id} hears {block.stack} frames, "
                f"{block.step_seconds * 1000:g} ms. Record longer."
            )
        labels = steps if req.transcript is None else len(transcript_ids(loaded, req.transcript))

        def wire() -> SpeechWire:
            tr = trace_audio(loaded, audio, transcript=req.transcript, beam_width=req.beam, checkpoint=req.checkpoint)
            return SpeechWire.build(loaded, tr, audio, req.precision)

        seconds = transcribe_seconds(loaded, audio, steps, req.beam, labels)
        return TraceStream(wire, SpeechWire.done_frame, seconds, estimate_bytes(loaded, steps, frames, labels))

    def card_fields(self, loaded: LoadedModel) -> dict[str, Any]:
        # what it writes, in the head's order (blank first), where a translation model gives its decoder's tokens
        return {"embed_size": 0, "vocab": None, "target_vocab": list(speech_card(loaded.card).alphabet_vocab().tokens)}

    def page(
        self, zoo: Zoo, loaded: LoadedModel, view: str, task_models: list[LoadedModel], peers: list[LoadedModel]
    ) -> PageChoice | str:
        if view != "model":
            return f"{loaded.card.id} transcribes speech: its page is /models/{loaded.card.id}, where it listens"
        return PageChoice("speech.html", {"peers": task_models, "german": german_model(zoo)})

    def home_card(self, loaded: LoadedModel) -> dict[str, Any]:
        return {"shape": "speech in, its text out (CTC)", "reads": "log-mel frames of a WAV", "open": "Transcribe",
                "writes": False, "learning": False, "values": False}  # fmt: skip

    def not_compared(self, task: str, first: str, known: str) -> str | None:
        return f"the task {task!r} transcribes speech: its models are not compared cell by cell here. " \
               f"Tasks with several cells: {known}"  # fmt: skip


SPEECH_WEB = SpeechWeb()

# The translation model the speech page hands its transcript to ("speech to German"): this one if the zoo has it,
# else its first translation model.
GERMAN = "numbers-gru-attention"


def german_model(zoo: Zoo) -> str | None:
    translators = [m.card.id for m in zoo if family_of(m.card.kind).name == "translation"]
    return GERMAN if GERMAN in translators else next(iter(translators), None)


# The example clips: models/speech-examples/NN-words-with-dashes.wav (16 kHz mono 16-bit), written by the trainer.
EXAMPLES = "speech-examples"
CLIP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}\.wav")

router = APIRouter(include_in_schema=False)


def example_clips(models_dir: Path) -> list[Path]:
    folder = models_dir / EXAMPLES
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if CLIP_NAME.fullmatch(p.name) and p.is_file())


def clip_words(name: str) -> str:
    """What a clip says, from its name: "07-two-thousand-and-five.wav" → "two thousand and five"."""
    words = name.removesuffix(".wav").split("-")
    return " ".join(words[1:] if len(words) > 1 and words[0].isdigit() else words)


@router.get("/api/speech-examples")
def speech_examples(request: Request) -> dict[str, Any]:
    """The bundled clips, in their names' order: {"examples": [{"name", "words", "bytes"}]}."""
    clips = example_clips(request.app.state.settings.models_dir)
    return {"examples": [{"name": p.name, "words": clip_words(p.name), "bytes": p.stat().st_size} for p in clips]}


@router.get("/api/speech-examples/{name}")
def speech_example(request: Request, name: str) -> Response:
    """One bundled clip's WAV (a name not listed: 404 naming it and what there is)."""
    clips = {p.name: p for p in example_clips(request.app.state.settings.models_dir)}
    if name not in clips:
        known = ", ".join(clips) or "none"
        return JSONResponse(error_body("unknown_example", f"no example clip {name!r}; the clips: {known}"), 404)
    return Response(clips[name].read_bytes(), media_type="audio/wav", headers={"Cache-Control": "no-cache"})
