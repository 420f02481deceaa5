"""Settings: every knob of the server, read once from the environment (prefix UNROLLED_)."""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]  # app/web/config.py → the project folder
# Set by `unrolled serve` for the processes it starts: its uvicorn settings (no per-message deflate, the bounded
# request head, ws_max_size) are the ones the app is measured and hardened with. Under another launcher the app
# still runs and says at start-up what it is missing.
SERVED_BY_CLI = "UNROLLED_SERVED_BY_CLI"


@lru_cache
def usable_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota (a container's --cpus, a
    Kubernetes CPU limit). os.cpu_count() counts the host's, which in a container can be ten times too many."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UNROLLED_", env_file=None, extra="ignore")

    models_dir: Path = Field(ROOT / "models", description="folder of <id>.safetensors + <id>.json model cards")
    tour_dir: Path | None = Field(None, description="a folder of the presenter's own tours (*.json), beside tours/")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64, description="server processes")
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="serve /metrics on this port (same host) instead of the public one"
    )
    torch_threads: int = Field(
        0, ge=0, le=256, description="torch threads per computation; 0 = cores ÷ (workers × max_concurrent)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = Field(False, description="log JSON lines to stdout (set in the container)")

    max_steps: int = Field(10_000, ge=1, le=1_000_000, description="longest input, in time steps")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="largest request body")
    max_top_k: int = Field(20, ge=1)
    max_generate: int = Field(2_000, ge=1, description="most tokens a generate request may sample")
    max_concurrent: int = Field(2, ge=1, le=1024, description="model computations running at once")
    max_queue: int = Field(64, ge=0, le=100_000, description="computations waiting for a slot; beyond: 503")
    max_queue_per_client: int = Field(
        16, ge=1, description="computations one client (address) may have running or waiting; beyond: 503"
    )
    expensive_seconds: float = Field(
        0.05,
        gt=0,
        description="a computation estimated (app/web/capacity/cost.py) to take at least this many CPU seconds is "
        "expensive (max_expensive): small work waits for at most one such computation, so a visitor's trace "
        "within ~100 ms",
    )
    max_expensive: int = Field(
        0, ge=0, description="slots expensive computations may hold at once; 0 = all but one of max_concurrent"
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="proxies trusted to name the client (X-Forwarded-For), comma-separated, or *: the address "
        "that fair queueing tells clients apart by",
    )
    share_computations: bool = Field(
        True,
        description="requests in flight for the same model, checkpoint and request share one computation, and "
        "result_cache_bytes of results serve repeats (a room of students opening one scene); false: each computes",
    )
    result_cache_bytes: int = Field(
        64_000_000, ge=0, description="bytes of shared results kept for repeats (traces, forecasts); 0: none kept"
    )
    static_build: bool = Field(
        True,
        description="serve static/build/ (the pages' modules bundled, Plotly's partial bundle: make install) where "
        "it is current; false: the modules one by one and Plotly's full bundle",
    )
    max_streams: int = Field(64, ge=1, description="open WebSocket streams; beyond: refused")
    send_timeout: float = Field(
        10.0, gt=0, description="seconds a REST body or stream waits on a client that reads nothing"
    )
    max_bytes_in_flight: int = Field(
        512_000_000, ge=1_000_000, description="bytes held at once for clients still reading (bodies, streams)"
    )
    min_stream_rate: int = Field(
        65_536, ge=1, description="bytes per second a stream's client must read on average, after send_timeout"
    )
    max_header_bytes: int = Field(
        65_536, ge=1024, description="largest request head (request line and headers); beyond: 431"
    )
    header_timeout: float = Field(10.0, gt=0, description="seconds a request's head may take to arrive; then 408")
    request_timeout: float = Field(5.0, gt=0, description="seconds a new stream has to send its request")
    shutdown_grace: float = Field(10.0, ge=0, description="seconds streams get to finish on SIGTERM")
    cors_origins: list[str] = Field(default_factory=list, description="allowed browser origins (none by default)")
    admin_token: SecretStr | None = Field(
        None,
        description="bearer token for uploading and deleting models (POST, DELETE /api/models); unset or empty: "
        "uploads are off",
    )
    max_upload_bytes: int = Field(
        64_000_000, ge=1024, description="largest upload body (POST /api/models), in place of max_body_bytes"
    )
    max_audio_bytes: int = Field(
        10 * 48_000 * 2 * 4 + 65_536,
        ge=1024,
        description="largest WAV body (POST /api/models/{id}/transcribe), in place of max_body_bytes: 10 s of 48 kHz "
        "stereo 32-bit samples and 64 KiB of header chunks; a stream's request may hold it in base64",
    )
    max_image_bytes: int = Field(
        1 << 20,
        ge=1024,
        le=1 << 20,
        description="largest PNG or JPEG body (POST /api/models/{id}/caption), in place of max_body_bytes: at most "
        "1 MiB, the most a caption model reads (app/engine/caption/image.py); a stream's request may hold it in base64",
    )

    # The lab (/lab, /api/lab/*, /api/models/{id}/jacobian and /diff): limits of its live experiments.
    lab_max_steps: int = Field(1_000, ge=2, description="longest sequence of the gradient knobs (/api/lab/gradients)")
    lab_max_hidden: int = Field(256, ge=1, description="largest hidden size of the gradient knobs")
    jacobian_max_steps: int = Field(300, ge=2, description="longest input of /jacobian (T² matrices of H × H)")
    max_training_runs: int = Field(1, ge=0, description="live training runs (/api/lab/train) at once; beyond: 503")
    lab_max_seconds: float = Field(60.0, gt=0, description="longest live training run, in seconds")
    lab_max_gap: int = Field(200, ge=1, description="largest memory gap N a live training run may choose")
    lab_models_kept: int = Field(12, ge=0, description="models trained live that are kept (the oldest go first)")
    lab_model_ttl: float = Field(3_600.0, gt=0, description="seconds a model trained live is kept")

    # Rooms (/join/{code}): students follow the presenter's tour on their own screens.
    redis_url: str | None = Field(
        None,
        description="redis://host:port/db: rooms live in Redis (pub/sub and a little state), so that several workers "
        "or replicas share them; unset: in this process's memory (one worker)",
    )
    room_ttl: float = Field(4 * 3600.0, ge=60, description="seconds a room lives after its presenter's last action")
    max_rooms: int = Field(100, ge=1, description="rooms open at once (per process without Redis); beyond: 503")
    room_max_people: int = Field(1_000, ge=1, description="connections one room holds (its presenter and students)")
    room_openings: int = Field(20, ge=1, description="rooms one address may open per hour; beyond: 429")

    @model_validator(mode="after")
    def _generation_fits(self) -> Settings:
        if self.max_generate >= self.max_steps:
            raise ValueError("max_generate must be below max_steps: a prompt and its generated text share max_steps")
        if self.metrics_port is not None and (self.metrics_port == self.port or self.workers > 1):
            raise ValueError("metrics_port needs one worker (metrics are per process) and a port other than port")
        return self

    def uploads_on(self) -> bool:
        """Uploads (and deletes) are on only with an admin token that is not empty."""
        return self.admin_token is not None and bool(self.admin_token.get_secret_value())

    def max_prompt_chars(self) -> int:
        """A generate prompt may take what max_steps leaves after max_generate."""
        return self.max_steps - self.max_generate

    def max_message_bytes(self) -> int:
        """The largest WebSocket message a stream takes (uvicorn's ws_max_size): a request body, or a transcribe
        (caption) request whose WAV (max_audio_bytes) or image (max_image_bytes) travels in base64, 4 characters for
        every 3 bytes, beside its fields."""
        largest_file = max(self.max_audio_bytes, self.max_image_bytes)
        return max(self.max_body_bytes, 4 * -(-largest_file // 3) + 4096)

    def threads_per_worker(self) -> int:
        """Threads per computation, so that all computations at once fit the cores: OpenMP threads that
        outnumber the cores spin-wait on each other and can make a 20 ms trace take seconds."""
        if self.torch_threads:
            return self.torch_threads
        return max(1, usable_cores() // (self.workers * self.max_concurrent))


@lru_cache
def get_settings() -> Settings:
    return Settings()
