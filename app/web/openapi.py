"""The OpenAPI schema states the server's own limits (from Settings), so a client, or a fuzzer, knows them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.engine.translation.trace import MAX_SOURCE_STEPS
from app.web.config import Settings


def limits(settings: Settings) -> dict[str, dict[str, dict[str, int]]]:
    """Schema name → property → JSON-schema keywords the service enforces (app.web.service)."""
    return {
        "TraceRequest": {
            "text": {"maxLength": settings.max_steps},
            "values": {"maxItems": settings.max_steps},
            "top_k": {"maximum": settings.max_top_k},
        },
        "TranslateRequest": {
            "text": {"maxLength": min(settings.max_steps, MAX_SOURCE_STEPS)},
            "top_k": {"maximum": settings.max_top_k},
        },
        "GenerateRequest": {
            "prompt": {"maxLength": settings.max_prompt_chars()},
            "length": {"maximum": settings.max_generate},
            "top_k": {"maximum": settings.max_top_k},
        },
        "GradientsRequest": {
            "steps": {"maximum": settings.lab_max_steps},
            "hidden_size": {"maximum": settings.lab_max_hidden},
        },
        "DiffRequest": {"text": {"maxLength": settings.max_steps}, "edited": {"maxLength": settings.max_steps}},
    }


def file_bodies(settings: Settings) -> dict[str, tuple[int, str]]:
    """Path → the limit of a POST whose body is a file, not JSON (and the setting that says it)."""
    return {
        "/api/models/{model_id}/transcribe": (settings.max_audio_bytes, "max_audio_bytes"),
        "/api/models/{model_id}/caption": (settings.max_image_bytes, "max_image_bytes"),
    }


def install(app: FastAPI, settings: Settings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            components = schema.get("components", {}).get("schemas", {})
            for name, props in limits(settings).items():
                for prop, keywords in props.items():
                    components[name]["properties"][prop].update(keywords)
            for path, (limit, setting) in file_bodies(settings).items():
                body = schema["paths"][path]["post"]["requestBody"]
                body["description"] = f"the file itself, at most {limit} bytes ({setting}); over it: 413"
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
