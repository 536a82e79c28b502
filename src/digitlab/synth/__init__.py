"""digitlab.synth: seeded, realistic image sets of digits, numbers and non-digits, with ground truth.

    from digitlab.synth import build_set, condition_names, clean_version
    ds = digitlab.data.load("mnist")
    samples = build_set("photo_ruled", n=100, seed=0, mnist_test=(ds.x_test, ds.y_test))
    s = samples[0]
    s.image        # uint8 (H, W, 3) RGB, or (H, W, 4) RGBA for canvases
    s.label, s.text, s.boxes   # 7, "7", [[x0, y0, x1, y1]]
    clean_version(s).image     # same ink and placement, white paper, black ink, no effects

Uses only MNIST *test* digits (as ink, or their skeletons redrawn with a pen), Debian's fonts and
drawn shapes. Media: phone photos of paper (`photo`), canvases as the web page and other apps send
them (`canvas`), and print. Conditions are listed by `condition_names()`; each has a description
(`CONDITIONS[name].description`). Non-digit sets come in disjoint splits ("train", "heldout"; see
`digitlab.synth.nondigits`).
"""
from __future__ import annotations

from digitlab.synth.conditions import (
    BASE,
    BROAD,
    CONDITIONS,
    FLAT,
    Condition,
    build_set,
    condition_names,
    get_condition,
    sample_rng,
)
from digitlab.synth.nondigits import FAMILIES as NONDIGIT_FAMILIES
from digitlab.synth.nondigits import SPLITS
from digitlab.synth.photo import PhotoFactors, PhotoSpec
from digitlab.synth.sample import InkRecord, Sample, clean_version
from digitlab.synth.sheet import contact_sheet, save_sheet

__all__ = [
    "BASE", "BROAD", "CONDITIONS", "FLAT", "NONDIGIT_FAMILIES", "SPLITS", "Condition", "InkRecord", "PhotoFactors",
    "PhotoSpec", "Sample", "build_set", "clean_version", "condition_names", "contact_sheet", "get_condition",
    "sample_rng", "save_sheet",
]
