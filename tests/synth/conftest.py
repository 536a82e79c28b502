"""Fixtures for the synth tests: a small MNIST-like set drawn with OpenCV, so no dataset is needed."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from digitlab.synth.fonts import DEBIAN_PACKAGES, missing_families


@pytest.fixture
def fonts_installed() -> None:
    """Skip the test when a font family is missing (printed and non-digit sets draw glyphs)."""
    missing = missing_families()
    if missing:
        pytest.skip(f"fonts {', '.join(missing)} not installed: apt-get install {' '.join(DEBIAN_PACKAGES)}")


def draw_digits(per_class: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (10 * per_class, 28, 28) digits drawn by cv2.putText (bright on black), and their labels."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label in range(10):
        for _ in range(per_class):
            img = np.zeros((28, 28), np.uint8)
            scale = rng.uniform(0.7, 0.9)
            org = (int(rng.integers(6, 10)), int(rng.integers(20, 24)))
            cv2.putText(img, str(label), org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 2, cv2.LINE_AA)
            xs.append(img)
            ys.append(label)
    return np.stack(xs), np.array(ys, np.int64)


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """30 MNIST-like test digits (3 per class) and labels."""
    return draw_digits()
