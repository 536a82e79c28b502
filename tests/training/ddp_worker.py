"""Run by torchrun from test_ddp.py: `train(TrainConfig.from_dict(json), run_dir=...)` on every rank."""
from __future__ import annotations

import json
import os
import sys

from digitlab.runs import train
from digitlab.training import TrainConfig

if __name__ == "__main__":
    config = TrainConfig.from_dict(json.loads(sys.argv[1]))
    result = train(config, run_dir=sys.argv[2])
    rank = os.environ["RANK"]
    with open(os.path.join(sys.argv[3], f"rank{rank}.json"), "w") as fh:  # what each rank saw
        json.dump({"history": result.history, "world": os.environ["WORLD_SIZE"]}, fh)
