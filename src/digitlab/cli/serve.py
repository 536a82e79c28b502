"""`digitlab serve`: the recognition HTTP API and drawing page for one or more trained models."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from digitlab.errors import DigitlabError

if TYPE_CHECKING:
    import uvicorn


def register(sub: argparse._SubParsersAction) -> None:
    """Add this command to the parser."""
    p = sub.add_parser(
        "serve",
        help="serve models over HTTP: JSON API and a drawing page",
        description="Serve trained models: POST /api/predict, GET /api/model, GET /healthz, the drawing page at /, "
                    "API docs at /docs. Binds to this machine only unless --host says otherwise.",
    )
    p.add_argument("run", nargs="?", metavar="RUN_OR_MODEL",
                   help="run directory, model.json or model.safetensors; served under its run folder's name")
    p.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                   help="also serve the model at PATH under NAME, chosen per request (repeatable; default: none)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default: 127.0.0.1, this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes, each loading every model (default: 1; on 2 cores more rarely helps)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx", "int8"),
                   help="Predictor backend (default: auto: int8 ONNX when the run has it, else ONNX Runtime, "
                        "else PyTorch)")
    p.add_argument("--threads", type=int, default=1,
                   help="inference threads per process, torch or ONNX Runtime (default: 1: batches are small "
                        "and the event loop needs the other core)")
    p.add_argument("--max-body-mb", type=float, default=10.0,
                   help="largest request body accepted, in MiB (default: 10)")
    p.add_argument("--access-log", action="store_true", help="log every request (default: off, it costs throughput)")
    p.set_defaults(func=run)


def model_sources(run: str | None, pairs: list[str]) -> dict[str, str]:
    """RUN_OR_MODEL and NAME=PATH arguments -> {name: path}, the first being the default model."""
    models: dict[str, str] = {}
    if run:
        path = Path(run)
        name = (path if path.is_dir() else path.resolve().parent).resolve().name or "model"
        models[name] = str(path)
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise DigitlabError(f"--model {pair!r}: write it as NAME=PATH, e.g. --model fashion=runs/fashion")
        if name in models:
            raise DigitlabError(f"--model {pair!r}: the name {name!r} is already used; pick another NAME")
        models[name] = path
    if not models:
        raise DigitlabError("no model to serve: give a run directory (digitlab serve runs/demo) or --model NAME=PATH")
    return models


def run(args: argparse.Namespace) -> int:
    """Load the models and serve until interrupted."""
    import uvicorn

    models = model_sources(args.run, args.model)
    options = {"max_body_bytes": int(args.max_body_mb * 1024 * 1024), "backend": args.backend,
               "num_threads": args.threads}
    common = {"host": args.host, "port": args.port, "access_log": args.access_log, "log_level": "info"}
    banner = f"digitlab: serving {', '.join(models)} at http://{args.host}:{args.port}/ (Ctrl-C to stop)"
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"digitlab: warning: --host {args.host} lets other machines reach the service; it has no "
              "authentication", file=sys.stderr)
    if args.workers > 1:
        from digitlab.serving.app import CONFIG_ENV

        os.environ[CONFIG_ENV] = json.dumps({"models": models, **options})
        print(banner, flush=True)
        _run_workers(uvicorn.Config("digitlab.serving.app:app_from_env", factory=True, workers=args.workers,
                                    **common))
        return 0
    from digitlab.serving import create_app

    app = create_app(models, **options)  # load before binding: a bad path fails here, not per request
    print(banner, flush=True)
    uvicorn.run(app, **common)
    return 0


def _run_workers(config: uvicorn.Config) -> None:
    """uvicorn's multi-process mode (as `uvicorn.run`), with TCP_NODELAY on the shared listening socket.

    uvicorn binds that socket with protocol 0, so asyncio does not set TCP_NODELAY on the
    connections it accepts (it checks for IPPROTO_TCP); Linux copies the option from the
    listening socket instead. Without it every keep-alive answer, written as headers then body,
    waits ~40 ms for the client's delayed ACK (Nagle's algorithm): measured 44 ms p50 vs 7 ms.
    """
    import socket

    from uvicorn.supervisors import Multiprocess

    sock = config.bind_socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    Multiprocess(config, sockets=[sock]).run()
