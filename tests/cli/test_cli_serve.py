"""`digitlab serve`: arguments, defaults in --help, model naming, one-line errors, binding, shutdown."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest

from digitlab.cli import build_parser, main
from digitlab.cli.serve import listen_socket, model_sources
from digitlab.errors import DigitlabError


def test_help_names_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for default in ("127.0.0.1", "8000", "default: 1", "10", "auto", "$DIGITLAB_TOKEN", "(default: off)",
                    "the CPU count", "(default: 5)", "(default: 128)"):
        assert default in out, default
    for option in ("--token", "--rate-limit", "--max-decodes", "--deadline", "--keep-alive", "--max-connections",
                   "--shutdown-timeout"):
        assert option in out


def test_defaults_bind_localhost():
    args = build_parser().parse_args(["serve", "runs/x"])
    assert (args.host, args.port, args.workers, args.threads) == ("127.0.0.1", 8000, 1, 1)


def test_model_sources_names_and_order(tmp_path):
    run = tmp_path / "mnist-cnn"
    run.mkdir()
    (run / "model.json").write_text("{}")
    assert list(model_sources(str(run), [])) == ["mnist-cnn"]
    assert list(model_sources(str(run / "model.json"), ["fashion=/x/y"])) == ["mnist-cnn", "fashion"]
    assert model_sources(None, ["a=p", "b=q=r"]) == {"a": "p", "b": "q=r"}


@pytest.mark.parametrize("pairs", [["nameonly"], ["=path"], ["a="], ["a=p", "a=q"]])
def test_bad_model_pairs(pairs):
    with pytest.raises(DigitlabError, match="NAME"):
        model_sources(None, pairs)


def test_no_model_serves_the_bundled_one():
    from digitlab.pretrained import bundled_model

    assert model_sources(None, []) == {"mnist": str(bundled_model("mnist"))}


def test_bad_model_path_fails_before_serving(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing"), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "missing" in err and "digitlab: error:" in err


def test_token_defaults_to_the_environment(monkeypatch):
    monkeypatch.setenv("DIGITLAB_TOKEN", "from-the-environment-0123")
    assert build_parser().parse_args(["serve", "runs/x"]).token == "from-the-environment-0123"
    monkeypatch.delenv("DIGITLAB_TOKEN")
    assert build_parser().parse_args(["serve", "runs/x"]).token is None


@pytest.mark.parametrize("option", [
    ["--port", "70000"], ["--port", "-1"], ["--max-body-mb", "-1"], ["--max-body-mb", "0"], ["--max-body-mb", "nan"],
    ["--max-body-mb", "1000"], ["--workers", "0"], ["--threads", "0"], ["--max-decodes", "0"], ["--deadline", "0"],
    ["--deadline", "inf"], ["--keep-alive", "0"], ["--max-connections", "0"], ["--shutdown-timeout", "-1"],
    ["--rate-limit", "0/s"], ["--rate-limit", "fast"], ["--token", "has space"], ["--token", ""],
])
def test_invalid_options_are_one_line(option, tmp_path, capsys):
    """Checked before any model loads or port binds: one line naming the option, exit code 1."""
    assert main(["serve", str(tmp_path / "never-loaded"), *option]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digitlab: error: ") and option[0] in lines[0], captured.err
    assert "never-loaded" not in captured.err and captured.out == ""


def test_listening_socket_has_tcp_nodelay():
    """Both serving paths listen on this socket (Linux copies TCP_NODELAY to accepted connections)."""
    with listen_socket("127.0.0.1", 0) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockname()[1] > 0  # port 0: the OS picked a free port


def test_bad_host_is_one_line():
    with pytest.raises(DigitlabError, match="--host"):
        listen_socket("no-such-host.invalid", 0)


def test_exposure_warning(capsys):
    from digitlab.cli.serve import _warn_exposure

    _warn_exposure("127.0.0.1", has_token=False)
    _warn_exposure("::1", has_token=False)
    assert capsys.readouterr().err == ""
    _warn_exposure("0.0.0.0", has_token=False)
    assert "warning" in capsys.readouterr().err
    _warn_exposure("0.0.0.0", has_token=True)
    err = capsys.readouterr().err
    assert "note" in err and "TLS" in err and "warning" not in err


def test_taken_port_is_one_line(tiny_run):
    """A port another socket listens on: one error line, exit 1, and no "serving" banner before it."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "digitlab", "serve", str(tiny_run), "--port", str(port),
                               "--backend", "torch"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "already in use" in lines[0] and str(port) in lines[0], done.stderr


def _send_half_a_request(port: int) -> socket.socket:
    """A connection that sent the headers of a 1000-byte upload and only 100 bytes of its body."""
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(b"POST /api/predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
                 b"Content-Length: 1000\r\n\r\n" + b"x" * 100)
    return conn


@pytest.mark.timeout(120)
def test_sigterm_with_a_request_in_flight_and_a_dropped_client(tiny_run, serve_process):
    """A client that leaves mid-body is one log line; SIGTERM ends a stuck request after --shutdown-timeout
    (answered 503 shutting_down) and the process exits, with no traceback in the log."""
    proc, port, log = serve_process(tiny_run, "--shutdown-timeout", "1")
    _send_half_a_request(port).close()  # the dropped client
    while "disconnected" not in log.read_text():
        assert proc.poll() is None
        time.sleep(0.05)
    with _send_half_a_request(port) as stuck:
        stuck.settimeout(60)
        time.sleep(0.2)  # let the server start reading it
        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(timeout=60)  # without a graceful-shutdown timeout it would wait forever
        answer = stuck.recv(65536)
    text = log.read_text()
    assert returncode in (0, -signal.SIGTERM), text  # uvicorn re-raises the signal once it has shut down
    assert answer.startswith(b"HTTP/1.1 503") and b"shutting_down" in answer
    assert "Traceback" not in text and "Exception in ASGI application" not in text, text
    assert len([line for line in text.splitlines() if "disconnected" in line]) == 1, text


@pytest.mark.timeout(120)
def test_broken_pipe_exits_quietly(tiny_run, mnist_dir):
    """`digitlab predict RUN t10k.idx.gz | head -1`: no traceback, exit code 141 (128 + SIGPIPE)."""
    test_images = mnist_dir / "t10k-images-idx3-ubyte.gz"
    proc = subprocess.Popen([sys.executable, "-m", "digitlab", "predict", str(tiny_run), str(test_images),
                             "--backend", "torch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as `head -1` does, with 10,000 lines still to write
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert first.startswith(str(test_images).encode())
    assert "Traceback" not in err and "BrokenPipe" not in err, err
