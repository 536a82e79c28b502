"""Property tests of the JSON request parser: any bytes give a Payload or a 4xx APIError, nothing else.

`payload.parse_json` is what every JSON body meets first. Hypothesis feeds it random bytes,
random JSON documents and request-shaped objects (the real fields with random, nearly valid
and invalid values: pixels of every shape, type and range, base64 and data URLs of random
bytes); each answer is checked against what the schema promises. A per-example deadline of a
second (inputs are at most a few kB; parsing takes well under a millisecond) guards against
super-linear behaviour, not a timing measurement.
"""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digitlab.serving.errors import APIError
from digitlab.serving.payload import Payload, parse_json

SETTINGS = settings(max_examples=300, deadline=timedelta(seconds=1), suppress_health_check=[HealthCheck.too_slow])
LEAVES = (st.none() | st.booleans() | st.integers() | st.integers(-2, 300) | st.floats() | st.floats(-0.5, 1.5)
          | st.text(max_size=16))
JSON_VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=6)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=40)


def check(body: bytes, allow_pixels: bool) -> Payload | APIError:
    """Parse `body`; the answer must be a well-formed Payload or a 4xx APIError with a code and a message."""
    try:
        payload = parse_json(body, allow_pixels=allow_pixels)
    except APIError as exc:
        assert 400 <= exc.status < 500, exc.status
        assert exc.code and len(exc.message) > 10
        return exc
    assert isinstance(payload, Payload)
    assert (payload.pixels is None) != (payload.image_bytes is None)
    if payload.pixels is not None:
        assert allow_pixels and payload.source == "pixels"
        assert payload.pixels.dtype == np.uint8 and payload.pixels.shape == (28, 28)
    else:
        assert payload.source == "base64" and len(payload.image_bytes) > 0
    assert payload.model is None or isinstance(payload.model, str)
    assert payload.top_k is None or (type(payload.top_k) is int and payload.top_k >= 1)
    return payload


@st.composite
def pixel_arrays(draw: st.DrawFn) -> object:
    """784 numbers or 28x28 (or a near miss), of ints, floats or a mix, in range or not, with odd values."""
    shape = draw(st.sampled_from([(784,), (28, 28), (28, 27), (783,), (2, 28, 28), (0,), (28, 28, 1)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["int", "float", "unit", "huge"]))
    if kind == "int":
        array = rng.integers(draw(st.sampled_from([0, -1])), draw(st.sampled_from([256, 257])), size=shape).tolist()
    elif kind == "float":
        array = (rng.random(shape) * draw(st.sampled_from([1.0, 255.0, 1.01]))).tolist()
    elif kind == "unit":
        array = rng.integers(0, 2, size=shape).tolist()
    else:
        array = np.asarray(rng.integers(0, 256, size=(*shape[:-1], max(1, shape[-1]))).tolist(), dtype=object)
        array.flat[0] = draw(st.sampled_from([10**30, -(10**30), 2**64, 1e308, True, None, "7", [1]]))
        array = array.tolist()
    if draw(st.booleans()):  # ragged: one row cut short
        if shape == (28, 28):
            array[draw(st.integers(0, 27))] = array[0][: draw(st.integers(0, 27))]
    return array


def image_strings() -> st.SearchStrategy[object]:
    data = st.binary(min_size=0, max_size=64)
    return st.one_of(
        data.map(lambda b: base64.b64encode(b).decode()),
        data.map(lambda b: "data:image/png;base64," + base64.b64encode(b).decode()),
        data.map(lambda b: "data:image/png," + b.hex()),
        st.text(max_size=40),
        JSON_VALUES,
    )


WILD_REQUESTS = st.fixed_dictionaries({}, optional={
    "image": image_strings(),
    "pixels": pixel_arrays() | JSON_VALUES,
    "scale": st.sampled_from([1, 255, 0, 2, True, 1.0, "255", None]),
    "model": st.sampled_from(["digits", "", None, 3, ["digits"]]),
    "top_k": st.integers(-2, 20) | st.sampled_from(["3", " 4 ", "x", True, 2.5, None]),
    "reject_threshold": st.floats() | st.sampled_from([True, "0.5", None, 1]),
    "pixel": JSON_VALUES,  # a misspelt field
})
NEARLY_VALID_PIXELS = st.fixed_dictionaries({"pixels": pixel_arrays()}, optional={
    "scale": st.sampled_from([1, 255]), "model": st.just("digits"), "top_k": st.integers(1, 20)})
NEARLY_VALID_IMAGES = st.fixed_dictionaries({"image": image_strings()}, optional={
    "model": st.just("digits"), "top_k": st.integers(1, 20), "reject_threshold": st.floats(0, 1)})
REQUESTS = st.one_of(WILD_REQUESTS, NEARLY_VALID_PIXELS, NEARLY_VALID_IMAGES)


@SETTINGS
@given(body=st.binary(max_size=4096), allow_pixels=st.booleans())
def test_random_bytes(body, allow_pixels):
    check(body, allow_pixels)


@SETTINGS
@given(value=JSON_VALUES, allow_pixels=st.booleans())
def test_random_json_documents(value, allow_pixels):
    check(json.dumps(value).encode(), allow_pixels)


@SETTINGS
@given(request=REQUESTS, allow_pixels=st.booleans())
def test_request_shaped_objects(request, allow_pixels):
    result = check(json.dumps(request).encode(), allow_pixels)
    if isinstance(result, Payload) and result.pixels is not None:
        # What the parser accepted is what was sent: the same numbers, on the scale they were read in.
        values = np.asarray(request["pixels"], dtype=object).ravel()
        sent = values.astype(np.float64).reshape(28, 28)
        scale = request.get("scale") or (1 if any(type(v) is float for v in values) else 255)  # any float: 0..1
        np.testing.assert_array_equal(result.pixels, np.rint(sent * (255 / scale)).astype(np.uint8))


@SETTINGS
@given(depth=st.integers(1, 50_000), opener=st.sampled_from([b"[", b'{"a":']))
def test_deep_nesting(depth, opener):
    closer = b"]" if opener == b"[" else b"}"
    check(opener * depth + closer * depth, True)
    check(b'{"pixels": ' + b"[" * depth + b"]" * depth + b"}", True)


def test_valid_requests_are_accepted():
    """The property tests' oracle agrees with the documented contract on plain valid requests."""
    x = np.arange(784) % 256
    for request in ({"pixels": x.tolist()}, {"pixels": x.reshape(28, 28).tolist(), "top_k": 2},
                    {"pixels": (x / 255).tolist(), "model": "digits"},
                    {"image": "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode()}):
        assert isinstance(check(json.dumps(request).encode(), True), Payload), request
