"""The ASGI app, as uvicorn is given it: `unrolled serve` (or `uvicorn app.main:app` with the flags it prints)."""

from app.web.app import create_app

app = create_app()
