"""Hostile model.json files: whatever the edit, loading gives a Checkpoint or a DigitlabError, nothing else.

Property tests (Hypothesis) mutate real `model.json` documents, as saved by `save_checkpoint`,
beside their untouched weights: one edit anywhere in the tree (a value replaced by any JSON, a
key deleted or added, a list shortened or grown), the whole document replaced, or its bytes
truncated or flipped. Integers drawn are small (-8..64), so no edit can ask for a model big
enough to exhaust this shared machine's memory; the oversize case is a separate test.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from digitlab.checkpoints import Checkpoint, ModelMeta, load_checkpoint, read_meta, save_checkpoint
from digitlab.errors import DigitlabError
from digitlab.models import build_model

SMALL_INTS = st.integers(-8, 64)  # see the module docstring
LEAVES = st.none() | st.booleans() | SMALL_INTS | st.floats() | st.text(max_size=12)
JSON_VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, dict[str, Any]]]:
    """Three small real checkpoints (softmax, mlp, cnn): (run dir, its model.json document)."""
    runs = []
    for name, config in (("softmax", {}), ("mlp", {"hidden": [16]}), ("cnn", {"channels": [4, 8]})):
        run_dir = tmp_path_factory.mktemp(name)
        save_checkpoint(run_dir, build_model(name, **config),
                        {"class_names": [str(i) for i in range(10)], "dataset": "mnist"})
        runs.append((run_dir, json.loads((run_dir / "model.json").read_text())))
    return runs


def _load_both(run_dir: Path, model_json: bytes) -> None:
    """Write `model_json` beside a link to run_dir's weights; read_meta and load_checkpoint must each
    return (a ModelMeta / a Checkpoint) or raise DigitlabError."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "model.json").write_bytes(model_json)
        os.symlink(run_dir / "model.safetensors", folder / "model.safetensors")
        for load in (read_meta, load_checkpoint):
            try:
                result = load(folder)
            except DigitlabError as exc:
                assert str(exc), load.__name__
                continue
            assert isinstance(result, (Checkpoint if load is load_checkpoint else ModelMeta)), load.__name__


def _containers(node: Any) -> list[Any]:
    items = node.items() if isinstance(node, dict) else enumerate(node)
    return [key for key, value in items if isinstance(value, (dict, list))]


def _mutate(doc: dict[str, Any], data: st.DataObject) -> Any:
    """One random edit at a random depth of `doc` (a deep copy is edited)."""
    doc = copy.deepcopy(doc)
    node: Any = doc
    while _containers(node) and data.draw(st.booleans(), label="go deeper"):
        node = node[data.draw(st.sampled_from(_containers(node)), label="into")]
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    edit = data.draw(st.sampled_from(["replace", "delete", "add"] if keys else ["add"]), label="edit")
    if edit == "add":
        value = data.draw(JSON_VALUES, label="added value")
        if isinstance(node, dict):
            node[data.draw(st.text(max_size=8) | st.sampled_from(["config", "sha256", "name", "file"]))] = value
        else:
            node.append(value)
        return doc
    key = data.draw(st.sampled_from(keys), label="key")
    if edit == "delete":
        del node[key]
    else:
        node[key] = data.draw(JSON_VALUES | st.sampled_from(["softmax", "mlp", "lenet", "cnn", "zeros"]),
                              label="new value")
    return doc


def _known_hole(doc: Any) -> bool:
    """A config key that collides with build_model's own arguments (pinned by
    test_config_keys_named_like_build_models_arguments; the properties cover everything else)."""
    model = doc.get("model") if isinstance(doc, dict) else None
    config = model.get("config") if isinstance(model, dict) else None
    return isinstance(config, dict) and bool({"name", "num_classes"} & set(config))


@SETTINGS
@given(data=st.data())
def test_mutated_model_json_loads_or_is_a_digitlab_error(saved, data):
    run_dir, doc = data.draw(st.sampled_from(saved), label="checkpoint")
    mutated = _mutate(doc, data)
    if data.draw(st.booleans(), label="a second edit"):
        mutated = _mutate(mutated, data) if isinstance(mutated, dict) else mutated
    assume(not _known_hole(mutated))
    _load_both(run_dir, json.dumps(mutated).encode())


@SETTINGS
@given(data=st.data())
def test_damaged_model_json_bytes_load_or_are_a_digitlab_error(saved, data):
    run_dir, doc = data.draw(st.sampled_from(saved), label="checkpoint")
    raw = bytearray(json.dumps(doc, indent=2).encode())
    for _ in range(data.draw(st.integers(1, 4), label="damages")):
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        damage = data.draw(st.sampled_from(["truncate", "flip", "insert"]), label="damage")
        if damage == "truncate":
            del raw[at:]
        elif damage == "flip":
            raw[at] ^= data.draw(st.integers(1, 255), label="xor")
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8), label="inserted")
        if not raw:
            break
    _load_both(run_dir, bytes(raw))


@given(value=JSON_VALUES)
@SETTINGS
def test_any_json_document_loads_or_is_a_digitlab_error(saved, value):
    _load_both(saved[0][0], json.dumps(value).encode())


def test_model_declared_far_larger_than_its_weights_is_refused(saved):
    """A model.json declaring a 3 PB model beside a few-kB weights file. 10**12 units is beyond any
    address space, so a failing allocation is immediate: the test itself never uses the memory."""
    run_dir, doc = saved[1]  # the mlp
    doc = copy.deepcopy(doc)
    doc["model"]["config"]["hidden"] = [10**12]
    _load_both(run_dir, json.dumps(doc).encode())


@pytest.mark.parametrize("key", ["name", "num_classes"])
def test_config_keys_named_like_build_models_arguments(saved, key):
    run_dir, doc = saved[0]
    doc = copy.deepcopy(doc)
    doc["model"]["config"][key] = 3
    _load_both(run_dir, json.dumps(doc).encode())
