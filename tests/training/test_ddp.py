"""DistributedDataParallel: 2 gloo processes on loopback == one process with the same global batch."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from digitlab.checkpoints import load_checkpoint
from digitlab.runs import train
from digitlab.training import TrainConfig

WORKER = Path(__file__).with_name("ddp_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one(mnist, mnist_dir: Path, tmp_path: Path) -> None:
    # No BatchNorm or dropout: then averaging the two ranks' gradients is exactly the full batch's.
    config = TrainConfig(dataset="mnist", data_dir=str(mnist_dir), model="lenet", train_size=2000,
                         validation_size=500, batch_size=100, epochs=2, optimizer="sgd", lr=0.05,
                         schedule="onecycle", device="cpu", threads=1)
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
           "127.0.0.1", "--master-port", str(_free_port()), str(WORKER), json.dumps(config.to_dict()),
           str(tmp_path / "ddp"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    single = train(config, mnist, run_dir=tmp_path / "single")
    ddp = load_checkpoint(tmp_path / "ddp")
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp.model.state_dict()[key], value, rtol=1e-4, atol=1e-5, msg=key)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == "2"
    for a, b, s in zip(ranks[0]["history"], ranks[1]["history"], single.history):
        assert a["train_loss"] == b["train_loss"]  # all-reduced: every rank reports the same
        assert a["train_loss"] == pytest.approx(s["train_loss"], rel=1e-4)
        assert a["val_accuracy"] == pytest.approx(s["val_accuracy"], abs=2 / 500)
    records = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]  # written once (rank 0), not twice
