"""export.sessions: ONNX sessions of a run when the user cache is read-only or the export fails."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from digitlab.errors import DigitlabError
from digitlab.inference import Predictor


def test_onnx_works_with_a_read_only_run_and_cache(cnn_run, mnist, tmp_path, monkeypatch):
    from digitlab.export import sessions as sessions_module

    run = tmp_path / "run"
    shutil.copytree(cnn_run, run)

    def read_only(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(sessions_module, "atomic_write_bytes", read_only, raising=False)
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path / "no-such-cache"))
    p = Predictor.load(run, backend="onnx")  # exported in memory; nothing could be cached
    assert p.backend == "onnx" and not (tmp_path / "no-such-cache").exists()
    x = mnist.x_test[:64]
    np.testing.assert_allclose(p.predict_proba(x), Predictor.load(run, backend="torch").predict_proba(x), atol=1e-5)


def test_auto_falls_back_to_torch_when_onnx_export_fails(cnn_run, tmp_path, monkeypatch):
    from digitlab.export import sessions as sessions_module

    def broken(*args, **kwargs):
        raise DigitlabError("export failed")

    monkeypatch.setattr(sessions_module, "onnx_bytes", broken)
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path / "empty-cache"))
    assert Predictor.load(cnn_run, backend="auto").backend == "torch"
    with pytest.raises(DigitlabError, match="export failed"):
        Predictor.load(cnn_run, backend="onnx")
