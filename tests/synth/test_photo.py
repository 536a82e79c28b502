"""Photo conditions measurably have what they claim: gradients, ruled/squared lines, shadows, inks, tints,
page edges, rotation, blur, noise, JPEG quality, sizes. Measurements are made on the pixels."""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from digitlab.synth import BASE, build_set, clean_version
from digitlab.synth.compose import Item, RowStyle, layout
from digitlab.synth.photo import flat, page_mask, render_photo, shadow_mask
from digitlab.synth.strokes import raster_mark

SIDE = 480


def _grey(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32).mean(2)


def _paper_only(s) -> np.ndarray:
    """Greyscale float32 (h, w) with every box (grown by 5%) set to NaN."""
    g = _grey(s.image)
    h, w = g.shape
    for x0, y0, x1, y1 in s.boxes:
        m = int(0.05 * max(h, w))
        g[max(y0 - m, 0):y1 + m, max(x0 - m, 0):x1 + m] = np.nan
    return g


def _block_means(g: np.ndarray, n: int = 8) -> np.ndarray:
    """Mean of the finite pixels in each of n x n blocks of `g` (NaN where a block has none): (n * n,)."""
    h, w = g.shape
    blocks = g[: h // n * n, : w // n * n].reshape(n, h // n, n, w // n)
    finite = np.isfinite(blocks)
    count = finite.sum(axis=(1, 3))
    total = np.where(finite, blocks, 0).sum(axis=(1, 3))
    return np.where(count > 0, total / np.maximum(count, 1), np.nan).ravel()


def _darkening(s) -> float:
    """1 - darkest / brightest 8x8 block of the paper (ink excluded)."""
    means = _block_means(_paper_only(s))
    means = means[np.isfinite(means)]
    return float(1 - means.min() / means.max())


def test_gradient_paper_is_measurably_uneven_and_the_baseline_nearly_flat(digits):
    for s in build_set("photo_gradient", 4, seed=1, mnist_test=digits, max_side=SIDE):
        strength = s.params["photo"]["light_strength"]
        assert _darkening(s) > max(0.1, 0.4 * strength)
    plain = [s for s in build_set("photo_plain", 6, seed=1, mnist_test=digits, max_side=SIDE)]
    assert np.median([_darkening(s) for s in plain]) < 0.12


def _row_spectrum(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(periods in px, power) of the mean row profile of a greyscale strip (h, w)."""
    profile = np.nanmean(g, axis=1)
    profile = np.nan_to_num(profile - np.nanmean(profile))
    power = np.abs(np.fft.rfft(profile * np.hanning(len(profile)))) ** 2
    freqs = np.fft.rfftfreq(len(profile))
    return 1 / np.maximum(freqs[1:], 1e-9), power[1:]


def _line_pitch(s) -> float:
    """The ruled/squared pitch in image pixels the sample's geometry predicts."""
    h = s.ink.homography
    scale = float(np.sqrt(abs(np.linalg.det(h[:2, :2] / h[2, 2]))))
    return s.params["photo"]["line_spacing"] * s.params["layout_row_px"] * scale


def _periodicity(strip: np.ndarray, pitch: float) -> float:
    """Power at the expected pitch (+-12%) over the median power: large for printed lines."""
    periods, power = _row_spectrum(strip)
    band = (periods > 0.88 * pitch) & (periods < 1.12 * pitch)
    return float(power[band].max() / np.median(power)) if band.any() else 0.0


def test_ruled_paper_has_lines_at_the_pitch_it_claims_and_plain_paper_none(digits):
    ruled = build_set("photo_ruled", 4, seed=2, mnist_test=digits, max_side=SIDE)
    for s in ruled:
        g = _paper_only(s)
        w = g.shape[1]
        strip = g[:, : w // 5]  # a narrow strip at the side: rotation barely smears the lines there
        pitch = _line_pitch(s)
        if g.shape[0] / pitch < 3:  # fewer than three lines in view: no spectrum to speak of
            continue
        assert _periodicity(strip, pitch) > 30, s.params["photo"]
    for s in build_set("photo_plain", 3, seed=2, mnist_test=digits, max_side=SIDE):
        g = _paper_only(s)
        periods, power = _row_spectrum(g[:, : g.shape[1] // 5])
        keep = periods < g.shape[0] / 3
        assert power[keep].max() / np.median(power) < 30


def test_squared_paper_is_periodic_both_ways(digits):
    for s in build_set("photo_squared", 3, seed=3, mnist_test=digits, max_side=SIDE):
        g = _paper_only(s)
        pitch = _line_pitch(s)
        assert _periodicity(g[:, : g.shape[1] // 5], pitch) > 30
        assert _periodicity(g[: g.shape[0] // 5, :].T, pitch) > 30


def _spec(**changes):
    """A baseline spec of a 480x360 photo, upright, with `changes`."""
    fixed = {"width": 480, "height": 360, "rotation": 0.0, "tilt": (0.0, 0.0), **changes}
    return replace(BASE.sample(np.random.default_rng(0)), **fixed)


def test_shadow_edges_are_hard_or_soft_as_named():
    rng = np.random.default_rng(4)
    hard = [shadow_mask(_spec(shadow="hard"), rng) for _ in range(4)]
    soft = [shadow_mask(_spec(shadow="soft"), rng) for _ in range(4)]
    steepest = [max(np.abs(np.diff(m, axis=0)).max(), np.abs(np.diff(m, axis=1)).max()) for m in hard + soft]
    assert min(steepest[:4]) > 0.15  # a penumbra of a pixel or two
    assert max(steepest[4:]) < 0.05  # spread over tens of pixels
    for m in hard + soft:
        assert 0.05 < m.mean() < 0.8  # covers part of the frame, never all of it


def test_shadowed_photos_are_darker_where_the_shadow_falls(digits):
    for name in ("photo_soft_shadow", "photo_hard_shadow"):
        for s in build_set(name, 3, seed=5, mnist_test=digits, max_side=SIDE):
            means = _block_means(_paper_only(s))
            means = means[np.isfinite(means)]
            assert 1 - means.min() / means.max() > 0.5 * s.params["photo"]["shadow_strength"]


def _ink_pixels(s, level: float = 20) -> np.ndarray:
    """RGB float (n, 3) of the photo where its clean version is solid ink."""
    return s.image[clean_version(s).image[:, :, 0] < level].astype(np.float32)


def test_inks_look_like_their_names(digits):
    made = build_set("photo_blue_ink", 3, seed=6, mnist_test=digits, max_side=SIDE)
    blue = np.concatenate([_ink_pixels(s) for s in made])
    assert (blue[:, 2] - blue[:, 0]).mean() > 40
    def contrast(name: str) -> float:  # ink darkness relative to its paper
        ratios = []
        for s in build_set(name, 4, seed=6, mnist_test=digits, max_side=SIDE):
            paper = np.nanmedian(_paper_only(s))
            ratios.append(_grey(s.image)[clean_version(s).image[:, :, 0] < 20].mean() / paper)
        return float(np.mean(ratios))
    assert contrast("photo_pencil") > contrast("photo_plain") + 0.15  # pencil is lighter than pen


def _stroke_width(s) -> float:
    """Ink area over skeleton length of the clean version, relative to the digit box height."""
    from digitlab.synth.strokes import thin

    ink = clean_version(s).image[:, :, 0] < 128
    x0, y0, x1, y1 = s.boxes[0]
    return ink.sum() / max(thin(ink).sum(), 1) / (y1 - y0)


def test_marker_strokes_are_thicker_than_pen_strokes(digits):
    def width(name: str) -> float:
        made = build_set(name, 6, seed=7, mnist_test=digits, max_side=SIDE)
        return float(np.median([_stroke_width(s) for s in made]))
    marker, pen = width("photo_marker"), width("photo_plain")
    assert marker > 1.4 * pen


def test_tinted_papers_have_their_colour(digits):
    for s in build_set("photo_tinted", 6, seed=8, mnist_test=digits, max_side=SIDE):
        g = _paper_only(s)
        rgb = s.image[np.isfinite(g)].astype(np.float32).mean(0)
        tint = s.params["photo"]["tint"]
        if tint in ("cream", "recycled"):
            assert rgb[0] - rgb[2] > 12  # yellowish
        else:
            assert tint == "grey" and rgb.mean() < 0.93 * 247 * s.params["photo"]["exposure"]


def test_page_edge_leaves_the_ink_on_the_page_and_shows_the_desk():
    rng = np.random.default_rng(9)
    img = np.zeros((28, 28), np.uint8)
    cv2.line(img, (14, 4), (14, 23), 255, 3)
    for _ in range(4):
        lay = layout([[Item(raster_mark(img), 1, "1")]], rng, RowStyle(), 120.0)
        spec = _spec(page_edge=True, fraction=0.4)
        photo = render_photo(lay, spec, rng)
        mask = page_mask(lay, spec, photo.homography, rng)
        x0, y0, x1, y1 = photo.boxes[0]
        assert mask[y0:y1, x0:x1].min() > 0.99
        border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
        assert border.min() < 0.01 and 0.3 < mask.mean() < 0.99


def test_rotation_turns_the_ink_by_the_angle_asked():
    img = np.zeros((28, 28), np.uint8)
    img[12:16, 2:26] = 255  # a horizontal bar
    rng = np.random.default_rng(10)
    for angle in (-9.0, 4.0, 10.0):
        lay = layout([[Item(raster_mark(img), None)]], rng, RowStyle(slant_deg=0, size_jitter=0), 40.0)
        photo = render_photo(lay, _spec(rotation=angle, fraction=0.1), rng)
        ink = (flat_cov := cv2.warpPerspective(lay.coverage, photo.homography, (480, 360))) > 0.5
        assert flat_cov.max() > 0.9
        (_, _), (w, h), a = cv2.minAreaRect(cv2.findNonZero(ink.astype(np.uint8)))
        measured = a if w >= h else a - 90
        assert abs(((measured - angle) + 90) % 180 - 90) < 1.0


def test_blur_lowers_sharpness_on_the_same_scene():
    img = np.zeros((28, 28), np.uint8)
    cv2.putText(img, "4", (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2, cv2.LINE_AA)
    lay = layout([[Item(raster_mark(img), 4, "4")]], np.random.default_rng(0), RowStyle(), 200.0)
    spec = _spec(noise=0.0, sharpen=0.0, jpeg_quality=95, fraction=0.5)
    sharp = render_photo(lay, replace(spec, blur="none"), np.random.default_rng(1)).image
    blurred = render_photo(lay, replace(spec, blur="defocus", blur_px=2.5), np.random.default_rng(1)).image
    moved = render_photo(lay, replace(spec, blur="motion", blur_px=2.5), np.random.default_rng(1)).image
    def sharpness(x):
        return cv2.Laplacian(_grey(x), cv2.CV_32F).var()
    assert sharpness(blurred) < 0.5 * sharpness(sharp) and sharpness(moved) < 0.7 * sharpness(sharp)


def test_noise_condition_is_noisier(digits):
    def residual(name: str) -> float:
        out = []
        for s in build_set(name, 3, seed=11, mnist_test=digits, max_side=SIDE):
            g = _grey(s.image)
            r = g - cv2.GaussianBlur(g, (0, 0), 2)
            out.append(np.nanstd(np.where(np.isfinite(_paper_only(s)), r, np.nan)))
        return float(np.median(out))
    assert residual("photo_noise") > 1.8 * residual("photo_plain")


def test_jpeg_quality_is_applied(digits):
    lows = build_set("photo_jpeg_low", 3, seed=12, mnist_test=digits, max_side=SIDE)
    for s in lows:
        assert 30 <= s.params["photo"]["jpeg_quality"] <= 60 and s.data[:2] == b"\xff\xd8"
        decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(s.data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert np.array_equal(decoded, s.image)
    img = np.zeros((28, 28), np.uint8)
    cv2.putText(img, "8", (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2, cv2.LINE_AA)
    lay = layout([[Item(raster_mark(img), 8, "8")]], np.random.default_rng(0), RowStyle(), 200.0)
    sizes = [len(render_photo(lay, _spec(jpeg_quality=q), np.random.default_rng(2)).data) for q in (35, 90)]
    assert sizes[0] < 0.6 * sizes[1]


def test_sizes_and_framing_follow_the_condition(digits):
    for s in build_set("photo_small", 4, seed=13, mnist_test=digits):
        assert 240 <= max(s.image.shape[:2]) <= 400
    for name, lo, hi in (("photo_far", 0.06, 0.26), ("photo_close", 0.55, 1.0)):
        for s in build_set(name, 4, seed=13, mnist_test=digits, max_side=SIDE):
            x0, y0, x1, y1 = s.boxes[0]
            assert lo <= (y1 - y0) / min(s.image.shape[:2]) <= hi


def test_flat_spec_removes_every_effect():
    spec = flat(_spec(shadow="hard", ink="blue", blur="motion", noise=9.0, page_edge=True))
    assert (spec.shadow, spec.ink, spec.blur, spec.noise, spec.page_edge, spec.light) == (
        "none", "black", "none", 0.0, False, "flat")


def test_large_photos_are_12_megapixels(digits):
    s = build_set("photo_large", 1, seed=0, mnist_test=digits)[0]
    assert sorted(s.image.shape[:2]) == [3024, 4032]
    x0, y0, x1, y1 = s.boxes[0]
    assert 0 <= x0 < x1 <= s.image.shape[1] and 0.3 <= (y1 - y0) / 3024 <= 0.75
