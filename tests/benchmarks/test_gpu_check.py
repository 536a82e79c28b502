"""benchmarks.gpu_check: the GPU script's whole path, run on the CPU (`--cpu --quick`)."""
from __future__ import annotations

import re

import pytest
import torch

from benchmarks import gpu_check


def test_the_gpu_script_runs_on_the_cpu_and_prints_its_figures(mnist_dir, capsys) -> None:
    assert gpu_check.main(["--cpu", "--quick", "--batch-size", "256", "--mnist-dir", str(mnist_dir)]) == 0
    out = capsys.readouterr().out
    for line in ("time to 99.0% test accuracy:", "final test accuracy:", "training images/s:",
                 "inference images/s"):
        assert line in out, out
    ratio = re.search(r"= ([0-9.]+)x", out)
    assert ratio and float(ratio.group(1)) > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here")
def test_without_cuda_it_says_how_to_run_it(capsys) -> None:
    with pytest.raises(SystemExit):
        gpu_check.main([])
    assert "--cpu" in capsys.readouterr().err
