"""examples/quickstart.ipynb runs top to bottom (executed with nbclient), so it never rots."""
from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_runs(mnist_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(mnist_dir))  # the kernel inherits the environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "softmax regression:" in outputs and "cnn:" in outputs and "macro avg" in outputs
    softmax = float(outputs.split("softmax regression: ")[1].split("%")[0])
    assert softmax > 88.0  # the tutorial's about 92%
