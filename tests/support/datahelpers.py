"""Helpers for the data-layer tests: a reference IDX encoder, tiny datasets, a loopback HTTP server."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# An IDX encoder written independently of digitlab.data.idx, to serve as the reference.
TYPE_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(arr: np.ndarray) -> bytes:
    """Reference IDX encoding: 0, 0, type code, ndim, big-endian uint32 sizes, big-endian data."""
    code = TYPE_CODES[arr.dtype.str[1:]]
    head = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@dataclass
class Tiny:
    """A small MNIST-shaped dataset: arrays, their reference IDX bytes and digests."""

    arrays: dict[str, np.ndarray]
    raw: dict[str, bytes] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.raw = {r: idx_bytes(a) for r, a in self.arrays.items()}
        self.digests = {r: sha256(b) for r, b in self.raw.items()}

    def write(self, folder: Path, *, gz: bool = True) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for role, data in self.raw.items():
            name = NAMES[role] + (".gz" if gz else "")
            (folder / name).write_bytes(gzip.compress(data, mtime=0) if gz else data)
        return folder


def make_tiny(seed: int = 0, n_train: int = 12, n_test: int = 6, num_classes: int = 10) -> Tiny:
    rng = np.random.default_rng(seed)
    return Tiny({
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, num_classes, n_train).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, num_classes, n_test).astype(np.uint8),
    })


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # clients that hang up (timeouts) are expected
        pass


class Server:
    """A loopback HTTP server whose path prefix picks a behaviour (see `Handler.do_GET`)."""

    def __init__(self, tiny: Tiny, other: Tiny) -> None:
        self.tiny, self.other = tiny, other
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.slow_seconds = 2.0
        self.delay_seconds = 0.0
        handler = type("H", (Handler,), {"server_state": self})
        self.httpd = _QuietServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{mode}/"

    def counts(self) -> Counter:
        with self.lock:
            return Counter(self.requests)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Handler(http.server.BaseHTTPRequestHandler):
    server_state: Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, body: bytes, ctype: str = "application/octet-stream", length: int | None = None,
              encoding: str | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self) -> None:
        st = self.server_state
        with st.lock:
            st.requests.append(self.path)
        parts = self.path.strip("/").split("/")
        mode, name = parts[0], parts[-1]
        role = next((r for r, n in NAMES.items() if name == n + ".gz"), None)
        if role is None:
            self.send_error(404)
            return
        good = st.tiny.raw[role]
        if mode in ("good", "delayed"):
            time.sleep(st.delay_seconds if mode == "delayed" else 0)
            self._send(gzip.compress(good, compresslevel=9, mtime=0))
        elif mode == "recompressed":  # same content, different gzip bytes (level, mtime, name)
            self._send(gzip.compress(good, compresslevel=1, mtime=1234567890))
        elif mode == "encoded":  # the .gz served with Content-Encoding: gzip: clients see the raw IDX
            self._send(gzip.compress(good, mtime=0), encoding="gzip")
        elif mode == "html":
            self._send(b"<!DOCTYPE html><html><body>Service unavailable</body></html>", "text/html")
        elif mode == "htmlbinary":  # an error page mislabelled as binary
            self._send(b"<html><body>404 Not Found</body></html>")
        elif mode == "truncated":
            body = gzip.compress(good, mtime=0)
            self._send(body[: len(body) // 2], length=len(body))
            self.close_connection = True
        elif mode == "wrong":
            self._send(gzip.compress(st.other.raw[role], mtime=0))
        elif mode == "slow":
            time.sleep(st.slow_seconds)
            self._send(gzip.compress(good, mtime=0))
        else:
            self.send_error(404)


def cache_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".lock")


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def simulate_read_only(monkeypatch, folder: Path) -> None:
    """Make `folder` and everything under it behave as a read-only tree, even for root.

    Creating, opening for writing, renaming or removing anything there raises PermissionError
    (EACCES), as a folder without write permission does; reading is untouched. Patches the os
    functions that tempfile, pathlib and filelock go through.
    """
    import errno

    root = os.path.realpath(folder)

    def inside(path) -> bool:
        if isinstance(path, int):
            return False
        p = os.path.realpath(os.fsdecode(path))
        return p == root or p.startswith(root + os.sep)

    def deny(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

    def guard(real, *, flags_arg: int | None = None, paths: int = 1):
        def wrapped(*args, **kwargs):
            flags = args[flags_arg] if flags_arg is not None and len(args) > flags_arg else kwargs.get("flags", 0)
            writes = flags_arg is None or flags & _WRITE_FLAGS
            if writes and any(inside(a) for a in args[:paths]):
                deny(args[0])
            return real(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(os, "open", guard(os.open, flags_arg=1))
    for name in ("mkdir", "unlink", "remove", "rmdir"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))
    for name in ("rename", "replace"):
        monkeypatch.setattr(os, name, guard(getattr(os, name), paths=2))
