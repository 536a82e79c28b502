"""Augmentation: identity at zero, shifts move the centre of mass, rotations match rot90."""
from __future__ import annotations

import numpy as np
import torch

from digitlab.training import affine, random_affine


def _digit(n: int = 4) -> torch.Tensor:
    """Random blobs kept away from the border, (n, 1, 28, 28) in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 8:20, 9:19] = torch.rand(n, 1, 12, 10, generator=g)
    return x


def _centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    """(row, col) centre of mass, computed with plain numpy."""
    rows, cols = np.indices(img.shape)
    total = img.sum()
    return float((rows * img).sum() / total), float((cols * img).sum() / total)


def test_zero_transform_is_identity() -> None:
    x = _digit()
    n = x.shape[0]
    out = affine(x, angle=torch.zeros(n), scale=torch.ones(n), shift=torch.zeros(n, 2))
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)
    g = torch.Generator().manual_seed(1)
    torch.testing.assert_close(random_affine(x, g, max_shift=0, max_rotation=0, max_scale=0), x, atol=1e-6, rtol=0)


def test_shift_moves_centre_of_mass() -> None:
    x = _digit(3)
    shift = torch.tensor([[3.0, -2.0], [-4.0, 1.0], [1.5, 2.5]])  # (dx, dy) pixels
    out = affine(x, angle=torch.zeros(3), scale=torch.ones(3), shift=shift)
    for i in range(3):
        r0, c0 = _centre_of_mass(x[i, 0].numpy())
        r1, c1 = _centre_of_mass(out[i, 0].numpy())
        assert abs((c1 - c0) - shift[i, 0].item()) < 1e-3
        assert abs((r1 - r0) - shift[i, 1].item()) < 1e-3
    # an integer shift is exactly a roll (the blob stays inside)
    torch.testing.assert_close(out[0], torch.roll(x[0], shifts=(-2, 3), dims=(1, 2)), atol=1e-5, rtol=0)


def test_rotation_by_90_degrees_is_rot90() -> None:
    x = _digit(2)
    out = affine(x, angle=torch.full((2,), 90.0), scale=torch.ones(2), shift=torch.zeros(2, 2))
    # +90 degrees with y pointing down turns clockwise on screen: torch.rot90 with k=-1
    torch.testing.assert_close(out, torch.rot90(x, k=-1, dims=(2, 3)), atol=1e-5, rtol=0)


def test_scale_zooms_about_the_centre() -> None:
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 12:16, 12:16] = 1.0  # a centred 4x4 square
    out = affine(x, angle=torch.zeros(1), scale=torch.full((1,), 2.0), shift=torch.zeros(1, 2))
    assert abs(out.sum().item() - 4 * x.sum().item()) < 1e-3  # area grows by scale^2
    r, c = _centre_of_mass(out[0, 0].numpy())
    assert abs(r - 13.5) < 1e-4 and abs(c - 13.5) < 1e-4


def test_random_affine_is_seeded_and_bounded() -> None:
    x = _digit(8)
    a = random_affine(x, torch.Generator().manual_seed(5), max_shift=2, max_rotation=10, max_scale=0.1)
    b = random_affine(x, torch.Generator().manual_seed(5), max_shift=2, max_rotation=10, max_scale=0.1)
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1 + 1e-6
    for i in range(8):  # centre of mass moves by at most shift + what rotation/zoom of the blob adds
        r0, c0 = _centre_of_mass(x[i, 0].numpy())
        r1, c1 = _centre_of_mass(a[i, 0].numpy())
        assert abs(r1 - r0) < 3.5 and abs(c1 - c0) < 3.5


def test_flip_is_a_mirror() -> None:
    x = _digit(3)
    flip = torch.tensor([True, False, True])
    out = affine(x, angle=torch.zeros(3), scale=torch.ones(3), shift=torch.zeros(3, 2), flip=flip)
    torch.testing.assert_close(out[0], torch.flip(x[0], dims=[2]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1], x[1], atol=1e-6, rtol=0)
    # random flips: about half the images mirrored, each exactly one of the two
    x = _digit(64)
    out = random_affine(x, torch.Generator().manual_seed(0), max_shift=0, max_rotation=0, max_scale=0, flip=True)
    mirrored = [torch.allclose(o, torch.flip(i, dims=[2]), atol=1e-6) for o, i in zip(out, x)]
    same = [torch.allclose(o, i, atol=1e-6) for o, i in zip(out, x)]
    assert all(m != s for m, s in zip(mirrored, same)) and 16 < sum(mirrored) < 48


# -- elastic warps and pen / scan changes ------------------------------------------------------------------

def test_constant_displacement_is_a_shift() -> None:
    """Output pixel p samples the input at p + d: a constant d = (1, -2) moves the image by (-1, +2)."""
    x = _digit(2)
    d = torch.zeros(2, 28, 28, 2)
    d[..., 0], d[..., 1] = 1.0, -2.0
    zeros, ones = torch.zeros(2), torch.ones(2)
    bent = affine(x, zeros, ones, torch.zeros(2, 2), displacement=d)
    moved = affine(x, zeros, ones, torch.tensor([[-1.0, 2.0], [-1.0, 2.0]]))
    torch.testing.assert_close(bent, moved, atol=1e-5, rtol=0)


def test_smooth_field_is_bilinear_in_its_knots_and_bounded() -> None:
    from digitlab.training.augment import ELASTIC_KNOTS, smooth_field

    field = smooth_field(5, 28, 20, 1.5, torch.Generator().manual_seed(3))
    assert field.shape == (5, 28, 20, 2) and field.abs().max() <= 1.5
    # the same draws, interpolated by torch's own bilinear resize (an independent implementation)
    knots = (torch.rand(5, 2, ELASTIC_KNOTS, ELASTIC_KNOTS, generator=torch.Generator().manual_seed(3)) * 2 - 1) * 1.5
    want = torch.nn.functional.interpolate(knots, size=(28, 20), mode="bilinear", align_corners=True)
    torch.testing.assert_close(field, want.permute(0, 2, 3, 1), atol=1e-5, rtol=0)
    # neighbouring pixels move together: the largest step between them is a knot step over ~9 pixels
    assert (field[:, 1:] - field[:, :-1]).abs().max() <= 2 * 1.5 / (27 / (ELASTIC_KNOTS - 1)) + 1e-5


def test_elastic_is_seeded_and_off_at_zero() -> None:
    x = _digit(4)
    a = random_affine(x, torch.Generator().manual_seed(1), elastic=1.5)
    b = random_affine(x, torch.Generator().manual_seed(1), elastic=1.5)
    plain = random_affine(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, plain)
    assert torch.equal(random_affine(x, torch.Generator().manual_seed(1), elastic=0.0), plain)


def test_stroke_filters_match_scipy() -> None:
    from scipy import ndimage

    from digitlab.training.augment import blur, thicken, thin

    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    a = x.numpy()
    want_max = ndimage.grey_dilation(a, size=(1, 1, 3, 3), mode="constant", cval=0.0)
    want_min = ndimage.grey_erosion(a, size=(1, 1, 3, 3), mode="constant", cval=1.0)
    np.testing.assert_allclose(thicken(x).numpy(), want_max, atol=0)
    np.testing.assert_allclose(thin(x).numpy(), want_min, atol=0)
    k1 = np.array([1, 4, 6, 4, 1], np.float64) / 16
    want_blur = ndimage.convolve(a.astype(np.float64), np.outer(k1, k1)[None, None], mode="constant", cval=0.0)
    np.testing.assert_allclose(blur(x).numpy(), want_blur, atol=1e-6)


def test_low_resolution_matches_opencv() -> None:
    import cv2

    from digitlab.training.augment import low_resolution

    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    got = low_resolution(x).numpy()
    for i in range(2):
        small = x[i, 0].numpy().reshape(14, 2, 14, 2).mean(axis=(1, 3))  # 2x2 block means
        want = cv2.resize(small, (28, 28), interpolation=cv2.INTER_LINEAR)  # half-pixel centres, edges replicated
        np.testing.assert_allclose(got[i, 0], want, atol=1e-5)


def test_random_pen_changes_its_shares_towards_each_filter() -> None:
    from digitlab.training.augment import blur, low_resolution, random_pen, thicken, thin

    x = _digit(20)
    out = random_pen(x, torch.Generator().manual_seed(2), stroke=0.4, blur_share=0.2, lowres=0.2)
    assert torch.equal(out, random_pen(x, torch.Generator().manual_seed(2), stroke=0.4, blur_share=0.2, lowres=0.2))
    strength = torch.rand(20, generator=torch.Generator().manual_seed(2))
    # images 0-3 thicker, 4-7 thinner, 8-11 blurred, 12-15 low resolution, 16-19 untouched
    for lo, hi, f in [(0, 4, thicken), (4, 8, thin), (8, 12, blur), (12, 16, low_resolution)]:
        xi = x[lo:hi]
        want = xi + strength[lo:hi].view(-1, 1, 1, 1) * (f(xi) - xi)
        torch.testing.assert_close(out[lo:hi], want, atol=1e-6, rtol=0)
    assert torch.equal(out[16:], x[16:])
    assert torch.equal(random_pen(x, torch.Generator().manual_seed(2)), x)
