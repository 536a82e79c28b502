"""`digitlab serve`: the recognition HTTP API and drawing page for one or more trained models."""
from __future__ import annotations

import argparse
import copy
import errno
import ipaddress
import json
import math
import os
import socket
import sys
from pathlib import Path
from typing import Any

from digitlab.errors import DigitlabError
from digitlab.layout import BACKENDS

TOKEN_ENV = "DIGITLAB_TOKEN"  # the token's environment variable (the library takes create_app(token=...))
MAX_BODY_MB = 64  # the largest image file digitlab.inference.load_image reads (MAX_FILE_BYTES)
LOOPBACK_NAMES = ("localhost",)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this command to the parser."""
    p = sub.add_parser(
        "serve",
        help="serve models over HTTP: JSON API and a drawing page",
        description="Serve trained models: POST /api/predict (one character), POST /api/read (every digit in a "
                    "picture), GET /api/model, GET /healthz, the drawing page at /, "
                    "API docs at /docs. Binds to this machine only unless --host says otherwise; for public "
                    "exposure set a token and put a TLS reverse proxy in front (docs/security.md).",
    )
    p.add_argument("run", nargs="?", metavar="RUN_OR_MODEL",
                   help="run directory, model.json or model.safetensors; served under its run folder's name "
                        "(default: the bundled MNIST model, served as \"mnist\", when no --model is given either)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                   help="also serve the model at PATH under NAME, chosen per request (repeatable; default: none)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default: 127.0.0.1, this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=8000, help="TCP port, 1-65535, or 0 for a free one (default: 8000)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes, each loading every model (default: 1; on 2 cores more rarely helps)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="Predictor backend (default: auto: int8 ONNX when the run has it, else ONNX Runtime, "
                        "else PyTorch)")
    p.add_argument("--threads", type=int, default=1,
                   help="inference threads per process, torch or ONNX Runtime (default: 1: batches are small "
                        "and the event loop needs the other core)")
    p.add_argument("--max-body-mb", type=float, default=10.0,
                   help=f"largest request body accepted, in MiB, at most {MAX_BODY_MB} (default: 10)")
    limits = p.add_argument_group("security and limits (docs/security.md)")
    limits.add_argument("--token", default=os.environ.get(TOKEN_ENV) or None,
                        help=f"require 'Authorization: Bearer TOKEN' on /api/* (default: ${TOKEN_ENV} if set, else "
                             f"none: no authentication); prefer ${TOKEN_ENV}, a command line is visible to others")
    limits.add_argument("--rate-limit", metavar="N/s", default=None,
                        help="per client address, at most N /api/ requests per second on average, bursts of "
                             "max(1, N); beyond it 429 (default: off)")
    limits.add_argument("--max-decodes", type=int, default=None, metavar="N",
                        help=f"image decodes running at once; 16 more per decoder may wait within the deadline, "
                             f"the rest get 503 (default: the CPU count, {os.cpu_count() or 1} here)")
    limits.add_argument("--deadline", type=float, default=10.0, metavar="SECONDS",
                        help="an /api/ request still running after this is answered 504 (default: 10)")
    limits.add_argument("--keep-alive", type=int, default=5, metavar="SECONDS",
                        help="close a connection idle this long after an answer (default: 5)")
    limits.add_argument("--max-connections", type=int, default=128, metavar="N",
                        help="open connections (and requests) at once; beyond it 503 (default: 128)")
    limits.add_argument("--shutdown-timeout", type=int, default=5, metavar="SECONDS",
                        help="on SIGTERM / Ctrl-C, wait this long for requests in flight, then cancel them "
                             "(default: 5)")
    p.add_argument("--access-log", action="store_true", help="log every request (default: off, it costs throughput)")
    p.set_defaults(func=run)


def model_sources(run: str | None, pairs: list[str]) -> dict[str, str]:
    """RUN_OR_MODEL and NAME=PATH arguments -> {name: path}, the first being the default model; with neither,
    the bundled MNIST model."""
    models: dict[str, str] = {}
    if run:
        path = Path(run)
        name = (path if path.is_dir() else path.resolve().parent).resolve().name or "model"
        models[name] = str(path)
    for pair in pairs:
        name, sep, where = pair.partition("=")
        if not sep or not name or not where:
            raise DigitlabError(f"--model {pair!r}: write it as NAME=PATH, e.g. --model fashion=runs/fashion")
        if name in models:
            raise DigitlabError(f"--model {pair!r}: the name {name!r} is already used; pick another NAME")
        models[name] = where
    if not models:  # nothing named: the bundled default model, so `digitlab serve` works right after install
        from digitlab.pretrained import DEFAULT, bundled_model

        models[DEFAULT] = str(bundled_model(DEFAULT))
    return models


def check_args(args: argparse.Namespace) -> dict[str, Any]:
    """The `create_app` options from the serve arguments; DigitlabError (one line) naming a bad one."""
    from digitlab.serving.limits import parse_rate
    from digitlab.serving.security import check_token

    if not 0 <= args.port <= 65535:
        raise DigitlabError(f"--port {args.port}: a TCP port is 1 to 65535 (or 0 for any free port)")
    for flag, value in (("--workers", args.workers), ("--threads", args.threads),
                        ("--max-connections", args.max_connections), ("--keep-alive", args.keep_alive)):
        if value < 1:
            raise DigitlabError(f"{flag} {value}: must be at least 1")
    if args.max_decodes is not None and args.max_decodes < 1:
        raise DigitlabError(f"--max-decodes {args.max_decodes}: must be at least 1")
    if args.shutdown_timeout < 0:
        raise DigitlabError(f"--shutdown-timeout {args.shutdown_timeout}: must be 0 or more seconds")
    if not 0 < args.max_body_mb <= MAX_BODY_MB:
        raise DigitlabError(f"--max-body-mb {args.max_body_mb:g}: must be more than 0 and at most {MAX_BODY_MB} "
                            "(MiB; the largest image file digitlab reads)")
    if not 0 < args.deadline < math.inf:
        raise DigitlabError(f"--deadline {args.deadline:g}: must be a positive number of seconds")
    options: dict[str, Any] = {"max_body_bytes": max(1, int(args.max_body_mb * 1024 * 1024)), "backend": args.backend,
                               "num_threads": args.threads, "max_decodes": args.max_decodes,
                               "deadline_s": args.deadline}
    if args.rate_limit is not None:
        try:
            options["rate_limit"] = parse_rate(args.rate_limit)
        except DigitlabError as exc:
            raise DigitlabError(f"--rate-limit: {exc}") from None
    if args.token is not None:
        try:
            options["token"] = check_token(args.token)
        except DigitlabError as exc:
            raise DigitlabError(f"--token / ${TOKEN_ENV}: {exc}") from None
    return options


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (port 0: any free one), TCP_NODELAY set; DigitlabError in one line.

    Bound here, not by uvicorn, so a taken port is one clear error before anything says "serving".
    TCP_NODELAY on the listening socket is copied by Linux to every accepted connection: asyncio
    sets it only on sockets created with IPPROTO_TCP, and without it every keep-alive answer,
    written as headers then body, waits ~40 ms for the client's delayed ACK (measured 44 ms p50 vs 7 ms).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn
    where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    try:
        address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)[0][4]
    except (socket.gaierror, UnicodeError) as exc:
        raise DigitlabError(f"--host {host!r}: not an address to listen on ({exc}); use 127.0.0.1, 0.0.0.0 or an "
                            "address of this machine") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise DigitlabError(f"cannot listen on {where}: the port is already in use (another server?); stop it "
                                "or choose another --port (0 picks a free one)") from None
        if exc.errno == errno.EACCES:
            raise DigitlabError(f"cannot listen on {where}: permission denied (ports below 1024 need privileges); "
                                "choose a --port of 1024 or more") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise DigitlabError(f"cannot listen on {where}: --host {host} is not an address of this machine") from None
        raise DigitlabError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)  # --workers: the worker processes accept on it
    return sock


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, plus the service's own `digitlab` logger on the same handler (stderr)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["digitlab"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def run(args: argparse.Namespace) -> int:
    """Check the options, load the models, bind the port and serve until interrupted."""
    import uvicorn

    from digitlab.serving.security import MIN_TOKEN_CHARS

    options = check_args(args)
    models = model_sources(args.run, args.model)
    if "token" in options and len(options["token"]) < MIN_TOKEN_CHARS:
        print(f"digitlab: warning: the token has only {len(options['token'])} characters, easy to guess; use "
              f"{MIN_TOKEN_CHARS} or more: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
              file=sys.stderr)
    common: dict[str, Any] = {
        "host": args.host, "port": args.port, "access_log": args.access_log, "log_level": "info",
        "log_config": _log_config(), "timeout_keep_alive": args.keep_alive,
        "timeout_graceful_shutdown": args.shutdown_timeout, "limit_concurrency": args.max_connections,
        "h11_max_incomplete_event_size": 16 * 1024,  # request line + headers; beyond it h11 refuses the request
        "server_header": False,
    }
    if args.workers > 1:
        from digitlab.serving.app import CONFIG_ENV

        os.environ[CONFIG_ENV] = json.dumps({"models": models, **options})
        sock = listen_socket(args.host, args.port)
        _print_banner(models, args.host, sock, "token" in options)
        from uvicorn.supervisors import Multiprocess

        Multiprocess(uvicorn.Config("digitlab.serving.app:app_from_env", factory=True, workers=args.workers,
                                    **common), sockets=[sock]).run()
        return 0
    from digitlab.serving import create_app

    app = create_app(models, **options)  # load before binding: a bad path fails here, not per request
    sock = listen_socket(args.host, args.port)
    _print_banner(models, args.host, sock, "token" in options)
    uvicorn.Server(uvicorn.Config(app, **common)).run(sockets=[sock])
    return 0


def _print_banner(models: dict[str, str], host: str, sock: socket.socket, has_token: bool) -> None:
    """The exposure warning, if any, then the line that says where the service is (the real port for --port 0)."""
    _warn_exposure(host, has_token)
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"digitlab: serving {', '.join(models)} at http://{shown}:{port}/ (Ctrl-C to stop)", flush=True)


def _warn_exposure(host: str, has_token: bool) -> None:
    """A loud warning for a network-reachable service without a token; a note to use TLS with one."""
    if is_loopback(host):
        return
    if not has_token:
        print(f"digitlab: warning: --host {host} lets other machines reach the service and there is no token: "
              f"anyone who can connect can use it. Set ${TOKEN_ENV} (or --token) and put a TLS reverse proxy in "
              "front (docs/security.md)", file=sys.stderr)
    else:
        print(f"digitlab: note: --host {host} is reachable from the network; plain HTTP sends the token in clear "
              "text, so put a TLS reverse proxy in front for public use (docs/security.md)", file=sys.stderr)
