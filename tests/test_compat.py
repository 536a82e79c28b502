"""`digitlab.compat.read_data_sets` behaves like TensorFlow 1's `input_data.read_data_sets`."""
from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from digitlab import compat
from digitlab.compat import DataSet, read_data_sets

DOCS = Path(__file__).resolve().parents[1] / "docs" / "data.md"


def _raw(mnist_dir: Path, name: str, offset: int) -> np.ndarray:
    return np.frombuffer(gzip.decompress((mnist_dir / name).read_bytes()), np.uint8, offset=offset)


@pytest.fixture(scope="module")
def tf1(mnist_dir):
    return read_data_sets(str(mnist_dir), one_hot=True, seed=0)


def test_splits_scaling_and_one_hot_match_the_files(tf1, mnist_dir):
    images = _raw(mnist_dir, "train-images-idx3-ubyte.gz", 16).reshape(-1, 784)
    labels = _raw(mnist_dir, "train-labels-idx1-ubyte.gz", 8)
    assert (tf1.train.num_examples, tf1.validation.num_examples, tf1.test.num_examples) == (55000, 5000, 10000)
    assert tf1.train.images.shape == (55000, 784) and tf1.train.images.dtype == np.float32
    np.testing.assert_array_equal(tf1.validation.images, images[:5000].astype(np.float32) * np.float32(1 / 255))
    np.testing.assert_array_equal(tf1.train.images[:3], images[5000:5003].astype(np.float32) * np.float32(1 / 255))
    assert tf1.train.images.min() == 0.0 and tf1.train.images.max() == 1.0
    assert tf1.validation.labels.shape == (5000, 10) and tf1.validation.labels.dtype == np.float64
    np.testing.assert_array_equal(tf1.validation.labels.argmax(1), labels[:5000])
    np.testing.assert_array_equal(tf1.validation.labels.sum(1), np.ones(5000))


def test_dense_labels_reshape_false_and_uint8(mnist_dir):
    d = read_data_sets(mnist_dir, reshape=False, dtype=np.uint8, validation_size=0)
    assert d.train.images.shape == (60000, 28, 28, 1) and d.train.images.dtype == np.uint8
    assert d.train.labels.dtype == np.uint8 and d.validation.num_examples == 0
    np.testing.assert_array_equal(d.test.labels, _raw(mnist_dir, "t10k-labels-idx1-ubyte.gz", 8))
    with pytest.raises(ValueError, match="between 0 and 60000"):
        read_data_sets(mnist_dir, validation_size=60001)
    with pytest.raises(TypeError, match="expected uint8 or float32"):
        DataSet(np.zeros((1, 2, 2, 1)), np.zeros(1), dtype=np.float64)


def _tracked(n: int, seed: int | None = 1) -> DataSet:
    """A DataSet whose image i is [i, i]: batches reveal which examples they hold."""
    ids = np.arange(n)
    return DataSet(np.stack([ids, ids], 1).reshape(n, 1, 2, 1).astype(np.uint8), ids, dtype=np.uint8, seed=seed)


@pytest.mark.parametrize("n, batch", [(10, 4), (10, 5), (7, 7), (9, 2)])
def test_next_batch_reads_the_stream_of_per_epoch_permutations(n, batch):
    """TF1's rule, stated independently: batches are consecutive full chunks of perm0 ++ perm1 ++ ...

    Each permutation is observed from `images` (which TF1 reorders in place) right after
    the call that drew it: the first call, and every call that crosses an epoch end.
    """
    ds = _tracked(n)
    stream, batches, epochs = [], [], []
    for _ in range(4 * n // batch + 3):
        before = ds.epochs_completed
        xb, yb = ds.next_batch(batch)
        np.testing.assert_array_equal(xb[:, 0], yb)  # images and labels stay paired
        assert len(yb) == batch  # every batch is full
        if not stream or ds.epochs_completed != before:
            perm = ds.images[:, 0].astype(int).tolist()
            assert sorted(perm) == list(range(n))
            stream += perm
        batches.append(yb.tolist())
        epochs.append(ds.epochs_completed)
    flat = [i for b in batches for i in b]
    assert flat == stream[: len(flat)]
    # epochs_completed counts overruns: a batch ending exactly at the epoch's end does not count yet
    assert epochs == [((k + 1) * batch - 1) // n for k in range(len(epochs))]


def test_epochs_completed_increments_when_a_batch_would_overrun():
    ds = _tracked(10)
    seen = [(ds.next_batch(4), ds.epochs_completed)[1] for _ in range(5)]
    # start 0 -> 4 -> 8 (overrun: epoch 1, index 2) -> 6 -> 10 (fits exactly) -> next overruns
    assert seen == [0, 0, 1, 1, 1]
    assert ds.next_batch(4)[1].shape == (4,) and ds.epochs_completed == 2


def test_no_shuffle_wraps_around_in_order():
    ds = _tracked(10)
    got = [ds.next_batch(4, shuffle=False)[1].tolist() for _ in range(3)]
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]


def test_seeded_and_independent_of_global_numpy_state():
    state = np.random.get_state()
    a = [_tracked(100, seed=5).next_batch(10)[1].tolist() for _ in range(2)]
    assert a[0] == a[1] and a[0] != list(range(10))
    after = np.random.get_state()
    assert np.array_equal(state[1], after[1]) and state[2:] == after[2:]


def test_fake_data():
    d = read_data_sets("", fake_data=True, one_hot=True)
    xs, ys = d.train.next_batch(3, fake_data=True)
    assert xs == [[1] * 784] * 3 and ys == [[1] + [0] * 9] * 3
    assert d.validation.num_examples == 10000


def test_train_dir_without_files_uses_the_chain_and_stays_untouched(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(mnist_dir))
    empty = tmp_path / "MNIST_data"
    d = read_data_sets(str(empty), validation_size=100, dtype=np.uint8)
    assert d.train.num_examples == 59900
    assert not empty.exists()


def test_docs_example_runs(mnist_dir, tmp_path, monkeypatch):
    """The tutorial snippet in docs/data.md runs as written (its data found via DIGITLAB_DATA_DIR)."""
    code = re.search(r"```python\n(# tf1-tutorial.*?)```", DOCS.read_text(), re.S)
    assert code, "docs/data.md lost its TF1 tutorial example"
    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(mnist_dir))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code.group(1), str(DOCS), "exec"), scope)
    assert scope["accuracy"] > 0.85  # softmax regression, as in the tutorial (about 0.92)
    assert compat.read_data_sets is scope["input_data"].read_data_sets
