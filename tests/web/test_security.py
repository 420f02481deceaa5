"""Security headers, CORS closed by default, and a graceful shutdown on SIGTERM."""

from __future__ import annotations

import signal

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.web.app import create_app
from app.web.config import Settings
from tests.conftest import LiveServer, free_port


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for path in ("/healthz", "/api/models", "/api/nothing"):
        h = client.get(path).headers
        assert h["x-content-type-options"] == "nosniff"
        assert h["x-frame-options"] == "DENY"
        csp = h["content-security-policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]


def test_a_forged_host_header_cannot_write_into_the_policy(client: TestClient) -> None:
    csp = client.get("/healthz", headers={"host": "evil.com; script-src *"}).headers["content-security-policy"]
    assert "evil" not in csp and "script-src 'self';" in csp


def test_cors_is_closed_unless_origins_are_configured(client: TestClient, settings: Settings) -> None:
    r = client.get("/api/models", headers={"origin": "https://elsewhere.example.org"})
    assert "access-control-allow-origin" not in r.headers
    open_app = create_app(settings.model_copy(update={"cors_origins": ["https://slides.example.org"]}))
    with TestClient(open_app) as c:
        ok = c.get("/api/models", headers={"origin": "https://slides.example.org"})
        assert ok.headers["access-control-allow-origin"] == "https://slides.example.org"
        other = c.get("/api/models", headers={"origin": "https://elsewhere.example.org"})
        assert "access-control-allow-origin" not in other.headers


def test_sigterm_stops_taking_work_closes_streams_properly_and_exits(settings: Settings) -> None:
    with LiveServer(settings, UNROLLED_SHUTDOWN_GRACE="5") as server:
        assert server.proc is not None
        with connect(f"{server.ws_url}/api/models/chars-gru/stream", max_size=2**24) as ws:
            ws.send(orjson.dumps({"mode": "generate", "prompt": "a", "length": 2000, "temperature": 1}).decode())
            ws.recv(timeout=30)
            server.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012  # "service restart"
        # uvicorn re-raises the signal after its graceful shutdown, so the exit status is SIGTERM's own
        # (a container's PID 1 ignores it and exits 0).
        assert server.proc.wait(timeout=15) in (0, -signal.SIGTERM)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/healthz", timeout=2)


def test_a_trailing_slash_redirects_to_a_path_never_to_the_hosts_a_client_names(client: TestClient) -> None:
    cases = {
        "/tours/": "/tours",
        "/api/models/?x=1": "/api/models?x=1",
        "//evil.example/": "/evil.example",  # never the protocol-relative //evil.example
        "/\\evil.example/": "/%5Cevil.example",  # nor /\evil.example, which browsers read as //evil.example
    }
    for path, location in cases.items():
        r = client.get("http://testserver" + path, headers={"host": "evil.example"}, follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"] == location, (path, r.headers.get("location"))
        assert "content-security-policy" in r.headers
    assert client.get("/tours/").status_code == 200  # and the redirect leads to the page


def test_metrics_can_leave_the_public_port(settings: Settings) -> None:
    """With metrics_port set, /metrics is served there (by the same process, counting the public port's requests)
    and is not found on the public port."""
    port = free_port()
    with LiveServer(settings, UNROLLED_METRICS_PORT=str(port)) as live:
        assert httpx.post(f"{live.url}/api/models/chars-lstm/trace", json={"text": "hi"}).status_code == 200
        public = httpx.get(f"{live.url}/metrics")
        assert public.status_code == 404 and public.json()["error"] == "not_found"
        private = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert private.status_code == 200
        assert 'route="/api/models/{model_id}/trace",status="200"} 1' in private.text
