"""TensorFlow 1's `input_data.read_data_sets` look-alike, so the old tutorials run unchanged.

    from digitlab import compat as input_data        # was: from tensorflow.examples.tutorials.mnist import input_data
    mnist = input_data.read_data_sets("MNIST_data/", one_hot=True)
    xs, ys = mnist.train.next_batch(100)             # (100, 784) float32 in [0, 1], (100, 10) one-hot

Behaves like `tensorflow/contrib/learn/python/learn/datasets/mnist.py`: validation is the
first `validation_size` training images; the first `next_batch` shuffles; an epoch's last
batch is completed from the start of the next (reshuffled) epoch so every batch is full.
Each DataSet owns its random generator (`seed`); the global numpy random state is untouched.
Files are looked for in `train_dir` first, then the usual sources; nothing is written to
`train_dir` (downloads go to the digitlab cache).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from digitlab.data import load, split_validation
from digitlab.data.registry import ROLES, get_spec
from digitlab.data.verify import find_in_folder

NUM_CLASSES = 10


def dense_to_one_hot(labels_dense: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Class labels (N,) to one-hot float64 vectors (N, num_classes), as TF1 did."""
    one_hot = np.zeros((labels_dense.shape[0], num_classes))
    one_hot[np.arange(labels_dense.shape[0]), labels_dense.astype(np.intp)] = 1
    return one_hot


class DataSet:
    """One split: `images`, `labels`, `num_examples`, `epochs_completed`, `next_batch`."""

    def __init__(self, images: Any, labels: Any, fake_data: bool = False, one_hot: bool = False,
                 dtype: Any = np.float32, reshape: bool = True, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        dtype = np.dtype(getattr(dtype, "as_numpy_dtype", dtype))  # also accepts tf.float32
        if dtype not in (np.dtype(np.uint8), np.dtype(np.float32)):
            raise TypeError(f"Invalid image dtype {dtype!r}, expected uint8 or float32")
        if fake_data:
            self._num_examples = 10000
            self.one_hot = one_hot
        else:
            if images.shape[0] != labels.shape[0]:
                raise ValueError(f"images.shape: {images.shape} labels.shape: {labels.shape}")
            self._num_examples = images.shape[0]
            # (N, rows, cols, 1) -> (N, rows * cols)
            if reshape:
                if images.shape[3] != 1:
                    raise ValueError(f"images.shape: {images.shape}: expected one channel to reshape")
                images = images.reshape(images.shape[0], images.shape[1] * images.shape[2])
            if dtype == np.float32:
                images = np.multiply(images.astype(np.float32), 1.0 / 255.0)  # [0, 255] -> [0.0, 1.0]
        self._images = images
        self._labels = labels
        self._epochs_completed = 0
        self._index_in_epoch = 0

    @property
    def images(self) -> np.ndarray:
        return self._images

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    @property
    def num_examples(self) -> int:
        return self._num_examples

    @property
    def epochs_completed(self) -> int:
        return self._epochs_completed

    def _permutation(self) -> np.ndarray:
        perm = np.arange(self._num_examples)
        self._rng.shuffle(perm)
        return perm

    def next_batch(self, batch_size: int, fake_data: bool = False,
                   shuffle: bool = True) -> tuple[Any, Any]:
        """The next `batch_size` examples: (images, labels) arrays (lists with `fake_data`, as TensorFlow gave)."""
        if fake_data:
            fake_image = [1] * 784
            fake_label = [1] + [0] * 9 if self.one_hot else 0
            return [fake_image for _ in range(batch_size)], [fake_label for _ in range(batch_size)]
        start = self._index_in_epoch
        # Shuffle for the first epoch
        if self._epochs_completed == 0 and start == 0 and shuffle:
            perm0 = self._permutation()
            self._images = self.images[perm0]
            self._labels = self.labels[perm0]
        if start + batch_size > self._num_examples:
            # Finished an epoch: the rest of it, then the start of the next (reshuffled) one.
            self._epochs_completed += 1
            rest_num_examples = self._num_examples - start
            images_rest_part = self._images[start:self._num_examples]
            labels_rest_part = self._labels[start:self._num_examples]
            if shuffle:
                perm = self._permutation()
                self._images = self.images[perm]
                self._labels = self.labels[perm]
            start = 0
            self._index_in_epoch = batch_size - rest_num_examples
            end = self._index_in_epoch
            images_new_part = self._images[start:end]
            labels_new_part = self._labels[start:end]
            return (np.concatenate((images_rest_part, images_new_part), axis=0),
                    np.concatenate((labels_rest_part, labels_new_part), axis=0))
        self._index_in_epoch += batch_size
        end = self._index_in_epoch
        return self._images[start:end], self._labels[start:end]


class Datasets(NamedTuple):
    train: DataSet
    validation: DataSet
    test: DataSet


def _has_files(train_dir: str | os.PathLike[str] | None) -> bool:
    if train_dir is None or not os.path.isdir(train_dir):
        return False
    spec = get_spec("mnist")
    return all(find_in_folder(Path(train_dir), spec.files[r]) is not None for r in ROLES)


def read_data_sets(train_dir: str | os.PathLike[str] | None, fake_data: bool = False, one_hot: bool = False,
                   dtype: Any = np.float32, reshape: bool = True, validation_size: int = 5000,
                   seed: int | None = None, source_url: str | None = None) -> Datasets:
    """MNIST as TF1's `Datasets(train, validation, test)`; images (N, 784) float32 in [0, 1] by default.

    `train_dir` is searched first (when it holds the four files), then the digitlab
    sources (cache, system folders, mirrors); nothing is written into `train_dir`.
    `source_url`, if given, is tried as a mirror before the official ones.
    """
    if fake_data:
        def fake() -> DataSet:
            return DataSet([], [], fake_data=True, one_hot=one_hot, dtype=dtype, seed=seed)

        return Datasets(train=fake(), validation=fake(), test=fake())

    ds = load("mnist", data_dir=train_dir if _has_files(train_dir) else None,
              mirrors=[source_url] if source_url else None)
    # TF1 kept images as (N, 28, 28, 1) uint8 and dense labels as uint8.
    train_images, test_images = ds.x_train[..., None], ds.x_test[..., None]
    train_labels, test_labels = ds.y_train.astype(np.uint8), ds.y_test.astype(np.uint8)
    if one_hot:
        train_labels, test_labels = dense_to_one_hot(train_labels), dense_to_one_hot(test_labels)
    if not 0 <= validation_size <= len(train_images):
        raise ValueError(
            f"Validation size should be between 0 and {len(train_images)}. Received: {validation_size}."
        )
    train_images, train_labels, validation_images, validation_labels = split_validation(
        train_images, train_labels, validation_size)
    options = dict(dtype=dtype, reshape=reshape, seed=seed)
    return Datasets(
        train=DataSet(train_images, train_labels, **options),
        validation=DataSet(validation_images, validation_labels, **options),
        test=DataSet(test_images, test_labels, **options),
    )
