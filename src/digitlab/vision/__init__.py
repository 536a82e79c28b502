"""Image understanding, NumPy, SciPy, OpenCV and Pillow only (no torch): from a file to what a model reads.

    decode      load_image: allowlisted formats, bounded memory, large JPEGs decoded small
    picture     picture: any image at working size (uint8 grey or RGB), `Box`, `Picture`
    ink         find_ink: the paper's lighting removed, the ink found, notebook lines removed
    objects     ink_objects: the ink grouped into things; specks and border ink left out
    normalise   preprocess: one picture -> the 28x28 in a dataset's format (MNIST, Fashion-MNIST)
    lines       find_lines / read_layout: lines of writing, normalised as the line reader's input
    annotate    annotate: a picture with a reading's boxes drawn on it
"""
from __future__ import annotations

from digitlab.vision.decode import MAX_FILE_BYTES, MAX_IMAGE_PIXELS, ImageInput, ImageSource, load_image
from digitlab.vision.ink import InkMap, find_ink
from digitlab.vision.lines import LineLayout, TextLine, find_lines, read_layout
from digitlab.vision.normalise import PROFILES, Preprocessed, preprocess, preprocess_image
from digitlab.vision.objects import ink_objects
from digitlab.vision.picture import WORK_SIDE, Box, Cleaned, Picture, clean, picture

__all__ = [
    "MAX_FILE_BYTES", "MAX_IMAGE_PIXELS", "PROFILES", "WORK_SIDE", "Box", "Cleaned", "ImageInput", "ImageSource",
    "InkMap", "LineLayout", "Picture", "Preprocessed", "TextLine", "clean", "find_ink", "find_lines", "ink_objects",
    "load_image", "picture", "preprocess", "preprocess_image", "read_layout",
]
