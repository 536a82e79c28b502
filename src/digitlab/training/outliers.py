"""Picture sets seen through the preprocessing: outliers to train on, and held-out sets to set and judge rejection.

Every set is made of `digitlab.synth` pictures (or another dataset's images) run through the
one preprocessing (`digitlab.vision.normalise.preprocess`, the model's dataset profile), so
training and evaluation see exactly what `Predictor.predict_image` would: a uint8 (N, 28, 28)
array plus the cheap ink facts of each picture. A set is made once and kept in the user cache
(`<cache>/sets/<key>.npz`, written atomically); the key covers the set's parameters, the source
digits and the source code of the synth and preprocessing modules, so a change to either makes
a new set instead of reusing a stale one.

    outlier_images(config, dataset)      # training outliers: synth non-digits (split "train") + other datasets
    realistic_digits(x, y, n, seed=...)  # digit pictures (photos, canvases, print) drawn from the digits x, y
    synth_nondigits(n, split="heldout")  # non-digits the detector never trained on
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import multiprocessing
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitlab._io import atomic_write_bytes
from digitlab.errors import DigitlabError

if TYPE_CHECKING:
    from digitlab.data import Dataset
    from digitlab.training.config import TrainConfig

log = logging.getLogger("digitlab.training")

SET_FORMAT = 1  # bump when the stored arrays change meaning
OUTLIER_SEED = 0  # one fixed stream of training outliers for every run: a set is made once, then cached
OUTLIER_MAX_SIDE = 400  # training outlier photos at most 400 px: 5x cheaper, same 28x28 after preprocessing
FACT_KEYS = ("blank", "objects", "components", "coverage", "density", "stroke")
NONDIGIT_CONDITIONS = ("nondigit_letters", "nondigit_symbols", "nondigit_scribbles", "nondigit_doodles",
                       "nondigit_mixed")
CHUNK = 50  # synth pictures are made and cached this many at a time, per condition
MAX_WORKERS = 4  # missing chunks are made in up to this many processes (one per CPU core)
MIN_PARALLEL = 4  # ...when at least this many are missing (a process costs ~1 s to start)
PREPROCESSED_OTHER = 2000  # of another dataset's training images, this many (evenly spread) also go through
# the preprocessing, as a photo of one would arrive (about 3 s, then cached)


@dataclass(frozen=True)
class ImageSet:
    """Pictures as the model sees them: images uint8 (N, 28, 28), their ink facts and where each came from.

    facts: FACT_KEYS -> (N,) arrays (blank bool, objects and components int, the rest float),
    as `digitlab.vision.normalise.Preprocessed` reports them. condition, medium: str (N,):
    the synth condition and the medium ("photo", "black", "transparent"); labels: int (N,), the
    digit for digit sets and -1 for non-digits.
    """

    images: np.ndarray
    facts: dict[str, np.ndarray]
    condition: np.ndarray
    medium: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def select(self, keep: np.ndarray) -> ImageSet:
        """The pictures where the bool (N,) `keep` holds."""
        return ImageSet(self.images[keep], {k: v[keep] for k, v in self.facts.items()}, self.condition[keep],
                        self.medium[keep], self.labels[keep])


@functools.lru_cache(maxsize=1)
def _code_hash() -> str:
    """SHA-256 of the source files that decide what a set contains (synth and vision: the preprocessing)."""
    import digitlab.synth as synth
    import digitlab.vision as vision

    h = hashlib.sha256()
    files = [p for pkg in (synth, vision) for p in sorted(Path(str(pkg.__file__)).parent.glob("*.py"))]
    for path in files:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _array_hash(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _cache_path(params: dict) -> Path:
    from digitlab.data.cache import cache_root

    key = hashlib.sha256(json.dumps({**params, "format": SET_FORMAT, "code": _code_hash()},
                                    sort_keys=True).encode()).hexdigest()
    return cache_root() / "sets" / f"{key[:32]}.npz"


def _read(path: Path) -> ImageSet | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return ImageSet(z["images"], {k: z[f"fact_{k}"] for k in FACT_KEYS}, z["condition"], z["medium"],
                            z["labels"])
    except (OSError, KeyError, ValueError):  # missing or damaged: made again
        return None


def _write(path: Path, s: ImageSet) -> None:
    buf = io.BytesIO()
    arrays: dict[str, Any] = {"images": s.images, "condition": s.condition, "medium": s.medium, "labels": s.labels,
                              **{f"fact_{k}": v for k, v in s.facts.items()}}
    np.savez(buf, **arrays)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:  # a read-only cache costs making the set again next time, nothing more
        log.info("could not cache a picture set at %s (%s)", path, exc)


def _cached(params: dict, make) -> ImageSet:  # type: ignore[no-untyped-def]
    path = _cache_path(params)
    found = _read(path)
    if found is not None:
        return found
    made = make()
    _write(path, made)
    return made


def _from_pictures(pictures: Sequence[np.ndarray], profile: str, condition: Sequence[str], medium: Sequence[str],
                   labels: Sequence[int]) -> ImageSet:
    """Preprocess each picture (any size, RGB(A) or grey) with `profile`; blank ones are kept, flagged."""
    from digitlab.vision.normalise import preprocess

    done = [preprocess(p, profile=profile) for p in pictures]
    facts = {k: np.array([getattr(d, k) for d in done]) for k in FACT_KEYS}
    facts["blank"] = facts["blank"].astype(bool)
    images = np.stack([d.image for d in done]) if done else np.zeros((0, 28, 28), np.uint8)
    return ImageSet(images, facts, np.array(condition, dtype=str), np.array(medium, dtype=str),
                    np.array(labels, dtype=np.int64))


def _medium(params: dict) -> str:
    return "photo" if params.get("medium") == "photo" else str(params.get("background", "canvas"))


def _concat(sets: Sequence[ImageSet]) -> ImageSet:
    return ImageSet(np.concatenate([s.images for s in sets]), {k: np.concatenate([s.facts[k] for s in sets])
                    for k in FACT_KEYS}, np.concatenate([s.condition for s in sets]),
                    np.concatenate([s.medium for s in sets]), np.concatenate([s.labels for s in sets]))


_Job = tuple[str, int, int]  # (condition, start, stop)
_DIGITS: tuple[np.ndarray, np.ndarray] | None = None  # a worker process's digit source (set once per worker)


def _render(job: _Job, common: dict, digits: tuple[np.ndarray, np.ndarray] | None) -> ImageSet:
    """Pictures start..stop-1 of one condition, preprocessed: one chunk of a set."""
    from digitlab.synth import build_set

    name, start, stop = job
    samples = build_set(name, stop - start, seed=common["seed"], mnist_test=digits, split=common["split"],
                        start=start, max_side=common["max_side"])
    labels = [-1 if s.label is None else int(s.label) for s in samples]
    return _from_pictures([s.image for s in samples], common["profile"], [name] * len(samples),
                          [_medium(s.params) for s in samples], labels)


def _init_worker(digits: tuple[np.ndarray, np.ndarray] | None) -> None:
    global _DIGITS
    import cv2

    cv2.setNumThreads(0)  # a forked child never touches a thread pool its parent may have started
    _DIGITS = digits


def _render_in_worker(args: tuple[_Job, dict]) -> ImageSet:
    return _render(args[0], args[1], _DIGITS)


def _render_all(jobs: list[_Job], common: dict, digits: tuple[np.ndarray, np.ndarray] | None) -> list[ImageSet]:
    """Every chunk of `jobs`; several missing ones are made in parallel processes.

    Forked on Linux only: a spawned process would re-run the caller's script when it has no
    `if __name__ == "__main__":` guard, and fork is unsafe on macOS. The children use NumPy,
    Pillow and OpenCV (single-threaded), never torch.
    """
    workers = min(len(jobs), os.cpu_count() or 1, MAX_WORKERS)
    if len(jobs) < MIN_PARALLEL or workers < 2 or not sys.platform.startswith("linux"):
        return [_render(job, common, digits) for job in jobs]
    log.info("making %d chunks of synth pictures in %d processes", len(jobs), workers)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_init_worker,
                             initargs=(digits,)) as pool:
        return list(pool.map(_render_in_worker, [(job, common) for job in jobs]))


def synth_set(conditions: Sequence[str], n: int, *, split: str = "train", seed: int = 0, profile: str = "mnist",
              digits: tuple[np.ndarray, np.ndarray] | None = None, max_side: int | None = None) -> ImageSet:
    """`n` pictures of each synth condition through the preprocessing of `profile`, cached in chunks.

    digits: (x uint8 (N, 28, 28), y (N,)) the handwritten digits the digit conditions draw
    (any MNIST-format digits: validation digits for fitting, test digits for judging). Pictures
    are made and cached CHUNK at a time (sample i depends only on the seed, condition, split
    and i), so a larger set reuses a smaller one's pictures; missing chunks are made in parallel.
    """
    common = {"split": split, "seed": seed, "profile": profile, "max_side": max_side}
    base = {**common, "digits": _array_hash(*digits) if digits is not None else None}
    jobs = [(name, lo, min(n, lo + CHUNK)) for name in conditions for lo in range(0, n, CHUNK)]
    paths = [_cache_path({**base, "condition": name, "start": lo, "stop": hi}) for name, lo, hi in jobs]
    found = [_read(path) for path in paths]
    missing = [i for i, f in enumerate(found) if f is None]
    for i, made in zip(missing, _render_all([jobs[i] for i in missing], common, digits)):
        _write(paths[i], made)
        found[i] = made
    parts = [f for f in found if f is not None]
    return _concat(parts) if parts else _from_pictures([], profile, [], [], [])


def realistic_digits(x: np.ndarray, y: np.ndarray, n: int, *, seed: int, profile: str = "mnist") -> ImageSet:
    """`n` pictures per synth digit condition (photos of paper, canvases, print) of the digits (x, y)."""
    from digitlab.synth import condition_names

    return synth_set(condition_names("digit"), n, seed=seed, profile=profile, digits=(x, y))


def synth_nondigits(n: int, *, split: str, seed: int, profile: str = "mnist", max_side: int | None = None) -> ImageSet:
    """`n` pictures per non-digit condition (letters, symbols, scribbles, doodles, mixed) of `split`."""
    return synth_set(NONDIGIT_CONDITIONS, n, split=split, seed=seed, profile=profile, max_side=max_side)


def preprocessed_images(x: np.ndarray, profile: str, *, name: str) -> ImageSet:
    """uint8 images (N, 28, 28) of another dataset run through the preprocessing of `profile`, cached."""
    params = {"images": _array_hash(x), "profile": profile, "name": name}
    return _cached(params, lambda: _from_pictures(list(x), profile, [name] * len(x), ["image"] * len(x),
                                                  [-1] * len(x)))


PAIR_SHIFTS = (12, 20)  # columns between two 28x28 digits of a pair: overlapping at 12, touching or close at 20


def digit_pairs(x: np.ndarray, n: int, seed: int = OUTLIER_SEED) -> np.ndarray:
    """uint8 (n, 28, 28 + shift) pictures of two digits of `x` (uint8 (N, 28, 28), bright on black) side by
    side, the second `shift` columns right of the first (PAIR_SHIFTS, drawn per pair): their strokes touch or
    overlap, as neighbours in a hand-written number do. The widest shift sets the width (zero padded)."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(len(x), size=n), rng.integers(len(x), size=n)
    shift = rng.integers(PAIR_SHIFTS[0], PAIR_SHIFTS[1] + 1, size=n)
    out = np.zeros((n, 28, 28 + PAIR_SHIFTS[1]), np.uint8)
    out[:, :, :28] = x[a]
    for s in np.unique(shift):  # one vectorised maximum per shift
        rows = np.flatnonzero(shift == s)
        out[rows, :, s:s + 28] = np.maximum(out[rows, :, s:s + 28], x[b[rows]])
    return out


def pair_outliers(x_train: np.ndarray, n: int, profile: str) -> np.ndarray:
    """`n` touching pairs of training digits (`digit_pairs`) through the preprocessing, as one piece would reach
    the model in `read`: uint8 (M, 28, 28), M <= n (pictures the ink checks already reject left out), cached."""
    params = {"pairs": _array_hash(x_train), "n": n, "shifts": PAIR_SHIFTS, "profile": profile}
    s = _cached(params, lambda: _from_pictures(list(digit_pairs(x_train, n)), profile, ["pair"] * n, ["image"] * n,
                                               [-1] * n))  # composed only when not cached
    return s.images[~s.facts["blank"] & (s.facts["objects"] == 1)]


def outlier_images(config: TrainConfig, dataset: Dataset) -> list[np.ndarray]:
    """The training outliers of `config` for a model of `dataset`: one uint8 (M_i, 28, 28) array per source.

    Training draws the same number from each source (`step._outlier_batch`), so a small varied
    source (the synth pictures) counts as much as a large one (60,000 Fashion-MNIST images).

    `config.oe_synth` synth non-digits of split "train" (never "heldout": that split judges the
    detector), and for each of `config.oe_datasets` its training images as they are plus
    PREPROCESSED_OTHER of them through the preprocessing (as a photo of one would arrive), and
    `config.oe_pairs` touching pairs of the model's own training digits (never validation ones).
    Raises DigitlabError when nothing is asked for or a dataset is the model's own.
    """
    from digitlab.data import load
    from digitlab.data.registry import preprocessing_of

    profile = preprocessing_of(dataset.name)
    parts = []
    if config.oe_synth:
        per = -(-config.oe_synth // len(NONDIGIT_CONDITIONS))
        s = synth_nondigits(per, split="train", seed=OUTLIER_SEED, profile=profile, max_side=OUTLIER_MAX_SIDE)
        parts.append(s.images[~s.facts["blank"]])
    for name in config.oe_datasets:
        if name == dataset.name:
            raise DigitlabError(f"oe_datasets: {name!r} is the dataset the model learns; give other datasets")
        other = load(name, data_dir=None)
        step = max(1, len(other.x_train) // max(1, PREPROCESSED_OTHER))
        parts += [other.x_train, preprocessed_images(other.x_train[::step][:PREPROCESSED_OTHER], profile,
                                                     name=name).images]
    if config.oe_pairs:
        parts.append(pair_outliers(dataset.x_train[config.validation_size:], config.oe_pairs, profile))
    parts = [p for p in parts if len(p)]
    if not parts:
        raise DigitlabError("outlier exposure (oe_weight > 0) needs outliers: set oe_synth > 0 or "
                            "oe_datasets (e.g. [\"fashion-mnist\"])")
    return parts


def photo_digits(config: TrainConfig, x_train: np.ndarray, y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`config.photo_digits` pictures per synth digit condition of the training digits, as the model sees them.

    Returns (images uint8 (P, 28, 28), labels int64 (P,)), blank pictures and several-object ones
    left out (the ink checks reject those before the model). x_train, y_train: the training split
    (never the validation or test images, which judge the model).
    """
    from digitlab.synth import condition_names

    s = synth_set(condition_names("digit"), config.photo_digits, seed=OUTLIER_SEED, digits=(x_train, y_train),
                  max_side=OUTLIER_MAX_SIDE)
    keep = ~s.facts["blank"] & (s.facts["objects"] == 1)
    return s.images[keep], s.labels[keep]
