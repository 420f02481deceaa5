"""A small Python client for a running server: traces as numpy arrays, over the stream's binary records.

    from app.client import Client

    client = Client("http://localhost:8000")
    arrays = client.trace("charlm-lstm", "The cat sat on the mat.")
    arrays["layers.0.hidden"]          # (T, H) float32: the hidden states
    arrays["grad_norms.hidden.0"]      # (T,) float64: ‖∂L/∂h_t‖

The trace travels as the stream's binary records (`"encoding": "binary"`), whose layout the meta frame gives; each
field is a numpy view of the received bytes (numpy.frombuffer: nothing is parsed or copied, so the arrays are
read-only). They hold the same values as the REST body: float32 states and probabilities, float64 gradient norms.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from app.wire.decode import Arrays, RecordError, grad_arrays, step_arrays

BATCH = 4096  # records per message: the most the server sends at once


class ClientError(RuntimeError):
    """The server refused a request: `status` is the HTTP status REST would answer (the stream closes with 4000 +
    it), `error` its short name, the message what went wrong."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status, self.error = status, error


@dataclass
class Traced:
    """A trace as the stream sends it: the meta frame (tokens, token ids, label, total loss, layouts…) and the
    arrays."""

    meta: dict[str, Any]
    arrays: Arrays


class Client:
    def __init__(self, url: str, timeout: float = 60.0) -> None:
        """`url`: the server's address, e.g. http://localhost:8000 (https for wss)."""
        self.url = url.rstrip("/")
        parts = urllib.parse.urlsplit(self.url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        self.ws_url = urllib.parse.urlunsplit((scheme, parts.netloc, parts.path, "", ""))
        self.timeout = timeout

    def open(self, path: str) -> ClientConnection:
        """A WebSocket to `path` that offers no compression: the records are float32 bytes that deflate barely
        shrinks, and a server that accepts permessage-deflate (plain uvicorn does by default) spends its CPU
        compressing every frame on the event loop (a 1000-step trace: 315 ms against 40 ms)."""
        return connect(path, max_size=None, open_timeout=self.timeout, close_timeout=1, compression=None)

    def models(self) -> list[dict[str, Any]]:
        """The server's models: id, task, cell, kind, sizes, description, metrics (GET /api/models)."""
        with urllib.request.urlopen(f"{self.url}/api/models", timeout=self.timeout) as r:
            models: list[dict[str, Any]] = json.loads(r.read())["models"]
        return models

    def trace(self, model_id: str, text: str, **options: Any) -> Arrays:
        """A model's trace of `text` as numpy arrays, by field name: "layers.{k}.hidden" and "layers.{k}.cell_state"
        (T, H), "layers.{k}.gates.{gate}" (T, H), "loss" (T,), "prediction.p" and "prediction.token_id" (T, top_k)
        or "probs" (T, labels) for a classifier, "grad_norms.hidden.{k}", "grad_norms.cell_state.{k}",
        "grad_norms.weight_hh.{k}" and "grad_norms.input" (T,), and "token_ids" (T,). Layer entries k are in
        torch's order (l0, l0_reverse, …). `options` are the trace request's: top_k, loss, checkpoint, label
        (a precision rounds JSON only: these arrays are the engine's values whole)."""
        return self.traced(model_id, text, **options).arrays

    def traced(self, model_id: str, text: str, **options: Any) -> Traced:
        """The trace and its meta frame."""
        traced = self._records(model_id, {**options, "text": text})
        traced.arrays["token_ids"] = np.asarray(traced.meta["token_ids"], dtype=np.int64)
        return traced

    def transcribe(self, model_id: str, wav: bytes, transcript: str | None = None, **options: Any) -> Traced:
        """A speech model's transcription of a WAV file's bytes: meta["text"] (the greedy path collapsed) and
        meta["beams"] ({"text", "log_prob"}, best first), meta["total_loss"] against `transcript` (or the model's own
        text), and the arrays by step of the network: "layers.{k}.hidden", "layers.{k}.cell_state" and
        "layers.{k}.gates.{gate}" (T', H) for each layer entry k in torch's order (meta["directions"]), "log_probs"
        (T', C) over meta["classes"], "occupancy" (T', S) over the trellis' meta["labels"], "greedy" and
        "alignment" (T',), "grad_norms.hidden.{k}", "grad_norms.cell_state.{k}", "grad_norms.weight_hh.{k}",
        "grad_norms.input" and "grad_norms.logits" (T',); and "features" (T, 40) the log-mel frames, by frame
        (meta["frame_seconds"] apart). `options`: beam, checkpoint."""
        request = {**options, "mode": "transcribe", "audio": base64.b64encode(wav).decode("ascii")}
        if transcript is not None:
            request["transcript"] = transcript
        traced = self._records(model_id, request)
        traced.arrays["features"] = np.asarray(traced.meta["features"], dtype=np.float32)
        return traced

    def caption(self, model_id: str, image_bytes: bytes, caption: str | None = None, **options: Any) -> Traced:
        """A caption model's caption of a PNG or JPEG file's bytes: meta["caption"] (the best beam's) and
        meta["beams"] ({"caption", "score", "finished"}, best first), meta["words"] (what each step wrote or was
        scored on: `caption` teacher-forced, else the model's own), meta["total_loss"], meta["start"] (h_{−1},
        c_{−1}) and meta["grad_norms"] (what reaches each of meta["cells"] grid cells: "grid", "grid_attention",
        "grid_start"; "start"), and the arrays by word: "layers.0.hidden", "layers.0.cell_state" and
        "layers.0.gates.{gate}" (T, H), "attention" (T, G) (each row sums to 1), "loss" (T,), "prediction.p" and
        "prediction.token_id" (T, 5), "grad_norms.hidden.0", "grad_norms.cell_state.0", "grad_norms.weight_hh.0",
        "grad_norms.input" and "grad_norms.context" (T,), "grad_norms.grid" (T, G) each word's own loss reaching
        each grid cell. `options`: beam, checkpoint."""
        request = {**options, "mode": "caption", "image": base64.b64encode(image_bytes).decode("ascii")}
        if caption is not None:
            request["caption"] = caption
        return self._records(model_id, request)

    def _records(self, model_id: str, request: dict[str, Any]) -> Traced:
        """A stream's meta frame and its step and grad records, decoded."""
        request = {**request, "encoding": "binary", "batch": BATCH}
        path = f"{self.ws_url}/api/models/{urllib.parse.quote(model_id, safe='')}/stream"
        with self.open(path) as ws:
            ws.send(json.dumps(request))
            meta = _frame(_receive(ws, self.timeout))
            steps, step_bytes = meta["steps"], meta["step_record_bytes"]
            records = _binary(ws, steps * step_bytes, self.timeout)
            grads = _binary(ws, steps * meta["grad_record_bytes"], self.timeout)
            done = _frame(_receive(ws, self.timeout))
            if done.get("type") != "done":
                raise ClientError(502, "protocol", f"expected the done frame, got {done.get('type')!r}")
        try:
            arrays = step_arrays(records, meta["layout"], steps)
            arrays.update(grad_arrays(grads, meta["grad_layout"], steps, prefix="grad_norms."))
        except RecordError as e:
            raise ClientError(502, "protocol", str(e)) from e
        return Traced(meta, arrays)


def _receive(ws: Any, timeout: float) -> str | bytes:
    try:
        message: str | bytes = ws.recv(timeout=timeout)
    except ConnectionClosed as e:
        raise ClientError(502, "closed", f"the server closed the stream ({e.rcvd})") from e
    return message


def _frame(message: str | bytes) -> dict[str, Any]:
    if isinstance(message, bytes):
        raise ClientError(502, "protocol", "expected a JSON frame, got binary records")
    frame: dict[str, Any] = json.loads(message)
    if frame.get("type") == "error":
        code = frame.get("error", "error")
        status = {"not_found": 404, "wrong_model_kind": 409, "too_large": 413, "busy": 503}.get(code, 422)
        raise ClientError(status, code, frame.get("message", ""))
    return frame


def _binary(ws: Any, total: int, timeout: float) -> bytes:
    """`total` bytes of records, in as many binary messages as the server sent them."""
    parts: list[bytes] = []
    got = 0
    while got < total:
        message = _receive(ws, timeout)
        if isinstance(message, str):
            _frame(message)  # an error frame raises
            raise ClientError(502, "protocol", "expected binary records, got a JSON frame")
        parts.append(message)
        got += len(message)
    if got != total:
        raise ClientError(502, "protocol", f"expected {total} bytes of records, got {got}")
    return parts[0] if len(parts) == 1 else b"".join(parts)
