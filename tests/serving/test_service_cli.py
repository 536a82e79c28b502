"""`digitlab serve`: arguments, defaults in --help, model naming, errors before binding."""
from __future__ import annotations

import pytest

from digitlab.cli import build_parser, main
from digitlab.cli.serve import model_sources
from digitlab.errors import DigitlabError


def test_help_names_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for default in ("127.0.0.1", "8000", "default: 1", "10", "auto"):
        assert default in out


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


def test_no_model_is_an_error(capsys):
    assert main(["serve"]) == 1
    assert "no model to serve" in capsys.readouterr().err


def test_bad_model_path_fails_before_serving(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing"), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "missing" in err and "digitlab: error:" in err


def test_workers_listen_with_tcp_nodelay(monkeypatch):
    """Multi-process mode sets TCP_NODELAY on the listening socket (else keep-alive answers wait ~40 ms)."""
    import socket

    import uvicorn
    import uvicorn.supervisors

    from digitlab.cli.serve import _run_workers

    seen: dict[str, int] = {}

    class Recorder:
        def __init__(self, config, sockets):
            seen["nodelay"] = sockets[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            seen["port"] = sockets[0].getsockname()[1]
            sockets[0].close()

        def run(self):
            seen["ran"] = 1

    monkeypatch.setattr(uvicorn.supervisors, "Multiprocess", Recorder)
    _run_workers(uvicorn.Config("digitlab.serving.app:app_from_env", factory=True, workers=2,
                                host="127.0.0.1", port=0))
    assert seen["nodelay"] == 1 and seen["ran"] == 1
