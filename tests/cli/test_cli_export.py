"""`digitlab export`: an ONNX file whose logits match PyTorch's; a dry run writes nothing."""
from __future__ import annotations

from digitlab.cli import main


def test_export_writes_onnx_and_reports_parity(cnn_run, mnist_dir, tmp_path, capsys):
    out = tmp_path / "exported.onnx"
    assert main(["export", str(cnn_run), "--onnx", "--out", str(out), "--data-dir", str(mnist_dir),
                 "--check-images", "64"]) == 0
    text = capsys.readouterr().out
    assert out.stat().st_size > 0
    diff = float(text.split("test images: ")[1].split()[0])
    assert diff < 1e-4


def test_export_dry_run_leaves_run_untouched(cnn_run, mnist_dir, capsys):
    before = sorted(p.name for p in cnn_run.iterdir())
    assert main(["export", str(cnn_run), "--onnx", "--dry-run", "--data-dir", str(mnist_dir),
                 "--check-images", "8"]) == 0
    assert "dry run" in capsys.readouterr().out
    assert sorted(p.name for p in cnn_run.iterdir()) == before
