"""`unrolled serve` and `unrolled trace`: the server, and one trace printed in a terminal."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import orjson
import uvicorn

from app.web.capacity import memory
from app.web.config import SERVED_BY_CLI, get_settings
from app.web.logs import log_config
from app.web.middleware.request_head import BoundedHead


def cmd_serve(args: argparse.Namespace) -> int:
    memory.limit_arenas()
    # --host and --port become the settings the app reads too (the metrics port binds the same host).
    os.environ.update({k: str(v) for k, v in (("UNROLLED_HOST", args.host), ("UNROLLED_PORT", args.port)) if v})
    os.environ[SERVED_BY_CLI] = "1"
    get_settings.cache_clear()
    settings = get_settings()
    host, port = settings.host, settings.port
    uvicorn.run(
        "app.main:app",
        host=host,
        port=port,
        workers=settings.workers,
        log_config=log_config(settings.log_level, settings.log_json),
        ws_max_size=settings.max_message_bytes(),
        # Compressing every frame costs more CPU than the trace itself and runs on the event loop.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace),
        server_header=False,
        http=BoundedHead,  # httptools with caps on a request head's size and time
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    return 0


def add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the app and its API",
        description="Serve the app. Every setting is an environment variable UNROLLED_<NAME> (see app/web/config.py).",
    )
    p.add_argument("--host", help="address to listen on (default: $UNROLLED_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: $UNROLLED_PORT or 8000)")
    p.set_defaults(func=cmd_serve)


def cmd_trace(args: argparse.Namespace) -> int:
    from app.engine.errors import EngineError
    from app.engine.family import load_model
    from app.engine.token.trace import trace
    from app.web.families.token import table
    from app.wire.token import WireTrace

    folder: Path = args.models or get_settings().models_dir
    try:
        loaded = load_model(folder, args.model)
        tr = trace(loaded, args.text, loss=args.loss, label=args.label, checkpoint=args.checkpoint)
    except (EngineError, OSError) as e:
        print(f"unrolled trace: {e}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(WireTrace.build(loaded, tr, args.precision).body(),
                                             option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")  # fmt: skip
        return 0
    print(f"{loaded.card.id}: {tr.steps} steps, L = {tr.loss:.4g} ({tr.loss_mode})")
    print("\n".join(table(loaded, tr)))
    return 0


def add_trace(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("trace", help="trace a text through a model", description="Trace a text through a model.")
    p.add_argument("model", help="model id, e.g. alphabet-lstm")
    p.add_argument("text", help="the input text")
    p.add_argument("--loss", choices=["sum", "last"], help="which loss BPTT differentiates")
    p.add_argument("--label", help="classifiers: the label the loss is measured against")
    p.add_argument("--checkpoint", help="a saved checkpoint, e.g. 0, 5, 20, 100")
    p.add_argument("--json", action="store_true", help="print the whole trace as the REST API's JSON body")
    p.add_argument("--precision", type=int, help="with --json: significant digits")
    p.add_argument("--models", type=Path, help="the models folder (default: $UNROLLED_MODELS_DIR or models/)")
    p.set_defaults(func=cmd_trace)
