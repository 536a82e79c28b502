"""Two processes fetching the same dataset at once: one download per file, one correct cache."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from support.datahelpers import NAMES, cache_files

CHILD = r"""
import json, sys
from digitlab.data import fetch, registry
cfg = json.loads(sys.argv[1])
registry.DATASETS["tiny"] = registry.DatasetSpec(
    name="tiny", class_names=tuple("0123456789"),
    files={r: registry.FileSpec(registry.STANDARD_FILES[r], cfg["digests"][r]) for r in registry.ROLES})
print("ready", flush=True)
sys.stdin.readline()  # start together
print(fetch("tiny", mirrors=[cfg["url"]], offline=False, progress=False), flush=True)
"""


def test_two_processes_fetch_at_once(tiny, server, tmp_path):
    server.delay_seconds = 0.3  # each download takes a while, so the two fetches overlap
    cache = tmp_path / "shared-cache"
    env = {**os.environ, "DIGITLAB_CACHE": str(cache)}
    env.pop("DIGITLAB_OFFLINE", None)
    cfg = json.dumps({"digests": tiny.digests, "url": server.url("delayed")})
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, cfg], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert Path(out.strip()) == cache / "tiny"
    # every file downloaded exactly once: the second process waited for the lock, then found the cache full
    assert sorted(server.counts().values()) == [1, 1, 1, 1]
    files = cache_files(cache)
    assert sorted(p.name for p in files) == sorted(NAMES.values())  # no temp files left over
    for p in files:
        role = next(r for r, n in NAMES.items() if n == p.name)
        assert hashlib.sha256(p.read_bytes()).hexdigest() == tiny.digests[role]
