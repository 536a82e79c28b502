"""Batched on-device augmentation: one random affine (+ elastic) warp per image, one grid_sample per batch,
and random pen and scan changes (stroke width, blur, resolution) on a random share of each batch.

Every random draw comes from the generator passed in (the trainer's augmentation stream), with
shapes fixed by the batch size, so a resumed run draws exactly what an uninterrupted one would.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ELASTIC_KNOTS = 4  # the displacement field is random on a 4x4 grid of knots, smoothly interpolated
LOWRES_FACTOR = 2  # down-up sampling: a 28x28 digit seen at 14x14 (a low-resolution scan) and back


def affine(x: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
           flip: torch.Tensor | None = None, displacement: torch.Tensor | None = None) -> torch.Tensor:
    """Warp each image: mirror left-right where `flip`, rotate by `angle` degrees, zoom by `scale`,
    then move by `shift` pixels; `displacement` bends the result by a per-pixel offset.

    x: (N, C, H, W) float; angle, scale: (N,); shift: (N, 2) as (dx, dy) pixels, +x right,
    +y down; flip: (N,) bool or None; displacement: (N, H, W, 2) pixels (dx, dy) or None: output
    pixel p samples the input where the affine map sends p, moved by displacement[p].
    Bilinear sampling, zeros (background) outside. Returns (N, C, H, W).
    """
    n, _, h, w = x.shape
    rad = angle.to(x.dtype) * (math.pi / 180)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # affine_grid maps each OUTPUT location to the INPUT location it samples: the inverse
    # transform. Forward: p_out = s R p_in + t (normalised coordinates), so p_in = R^T (p_out - t) / s.
    inv = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)  # (N, 2, 2) = R^T
    inv = inv / scale.to(x.dtype).view(n, 1, 1)
    if flip is not None:  # p_out = s R F p_in + t with F = diag(-1, 1): negate the inverse's first row
        sign = 1 - 2 * flip.to(x.dtype)  # (N,) -1 where flipped
        inv = torch.cat([inv[:, :1] * sign.view(n, 1, 1), inv[:, 1:]], 1)
    t = torch.stack([shift[:, 0] * 2 / w, shift[:, 1] * 2 / h], 1).to(x.dtype)  # pixels -> [-1, 1] units
    theta = torch.cat([inv, -(inv @ t.unsqueeze(2))], 2)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, H, W, 2)
    if displacement is not None:
        grid = grid + displacement.to(x.dtype) * torch.tensor([2 / w, 2 / h], dtype=x.dtype, device=x.device)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _interpolation_matrix(knots: int, size: int, device: torch.device | str | None, dtype: torch.dtype) -> torch.Tensor:
    """(size, knots): row i holds the linear-interpolation weights of the knots at pixel i (ends aligned)."""
    pos = torch.linspace(0, knots - 1, size, device=device, dtype=dtype).view(size, 1)  # pixel i in knot units
    return (1 - (pos - torch.arange(knots, device=device, dtype=dtype)).abs()).clamp(min=0)


def smooth_field(n: int, h: int, w: int, magnitude: float, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """A smooth random displacement field (N, H, W, 2) in pixels, each component within +-`magnitude`.

    Uniform random offsets on an ELASTIC_KNOTS x ELASTIC_KNOTS grid of knots spanning the image,
    bilinearly interpolated (a small elastic distortion, after Simard et al. 2003, whose per-pixel
    noise is Gaussian-filtered instead: the coarse grid is smooth already). The interpolation is
    two small matrix products, A K A^T, about a tenth of the cost of `F.interpolate` here.
    """
    knots = torch.rand(n, 2, ELASTIC_KNOTS, ELASTIC_KNOTS, generator=generator, device=device) * 2 - 1
    rows = _interpolation_matrix(ELASTIC_KNOTS, h, device, knots.dtype)  # (H, K)
    cols = _interpolation_matrix(ELASTIC_KNOTS, w, device, knots.dtype)  # (W, K)
    field = rows @ knots @ cols.T  # (N, 2, H, W)
    return field.permute(0, 2, 3, 1) * magnitude


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    max_shift: float = 2.0,
    max_rotation: float = 10.0,
    max_scale: float = 0.1,
    flip: bool = False,
    elastic: float = 0.0,
) -> torch.Tensor:
    """x (N, C, H, W) warped by uniformly random shifts (pixels), rotations (degrees) and zooms,
    mirrored left-right with probability 1/2 when `flip` (clothes, never digits), and bent by a
    smooth random field of up to `elastic` pixels (`smooth_field`) when `elastic` > 0."""
    n, _, h, w = x.shape
    u = torch.rand(n, 5 if flip else 4, generator=generator, device=x.device) * 2 - 1  # (N, 4|5) in [-1, 1)
    field = smooth_field(n, h, w, elastic, generator, x.device) if elastic > 0 else None
    return affine(x, angle=u[:, 0] * max_rotation, scale=1 + u[:, 1] * max_scale,
                  shift=u[:, 2:4] * max_shift, flip=u[:, 4] < 0 if flip else None, displacement=field)


def _shifted(x: torch.Tensor, reach: int, value: float) -> tuple[torch.Tensor, int, int]:
    """x padded by `reach` pixels of `value` on each side, and its height and width."""
    return F.pad(x, (reach,) * 4, value=value), x.shape[-2], x.shape[-1]


def thicken(x: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) with every stroke grown by a pixel: a 3x3 maximum filter (dilation), as maxima of shifts."""
    p, h, w = _shifted(x, 1, 0.0)  # background is 0
    rows = torch.maximum(torch.maximum(p[..., :, :w], p[..., :, 1:w + 1]), p[..., :, 2:])
    return torch.maximum(torch.maximum(rows[..., :h, :], rows[..., 1:h + 1, :]), rows[..., 2:, :])


def thin(x: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) in [0, 1] with every stroke shrunk by a pixel: a 3x3 minimum filter (erosion)."""
    p, h, w = _shifted(x, 1, 1.0)  # outside counts as ink, as in a minimum filter that ignores it
    rows = torch.minimum(torch.minimum(p[..., :, :w], p[..., :, 1:w + 1]), p[..., :, 2:])
    return torch.minimum(torch.minimum(rows[..., :h, :], rows[..., 1:h + 1, :]), rows[..., 2:, :])


def blur(x: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) blurred by the 5x5 binomial filter ([1, 4, 6, 4, 1] / 16 each way; a Gaussian of sigma 1)."""
    p, h, w = _shifted(x, 2, 0.0)
    rows = p[..., :, :w] + p[..., :, 4:] + 4 * (p[..., :, 1:w + 1] + p[..., :, 3:w + 3]) + 6 * p[..., :, 2:w + 2]
    return (rows[..., :h, :] + rows[..., 4:, :] + 4 * (rows[..., 1:h + 1, :] + rows[..., 3:h + 3, :])
            + 6 * rows[..., 2:h + 2, :]) / 256


def low_resolution(x: torch.Tensor, factor: int = LOWRES_FACTOR) -> torch.Tensor:
    """x (N, C, H, W) averaged down by `factor` (area) and bilinearly back up: a low-resolution scan."""
    small = F.avg_pool2d(x, factor)
    return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)


def random_pen(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    stroke: float = 0.0,
    blur_share: float = 0.0,
    lowres: float = 0.0,
) -> torch.Tensor:
    """x (N, C, H, W) in [0, 1], a shuffled batch, as other pens and scanners would give it.

    The first round(stroke * N) images get thicker (the first half of them) or thinner strokes
    (3x3 max / min filter), the next round(blur_share * N) are blurred (`blur`), the next
    round(lowres * N) down-up sampled (`low_resolution`), each at a random strength s in [0, 1)
    (x + s * (changed - x)), so widths and blurs between none and one step occur too. The batch
    is in random order (a fresh permutation every epoch), so these are random images; each op
    runs on its own slice only, a few percent of a training step. Shares above 1 in all are cut.
    """
    n = x.shape[0]
    strength = torch.rand(n, generator=generator, device=x.device).view(n, *([1] * (x.dim() - 1)))
    a = min(n, round(stroke * n))
    b = min(n, a + round(blur_share * n))
    c = min(n, b + round(lowres * n))
    half = (a + 1) // 2
    ops = [(0, half, thicken), (half, a, thin), (a, b, blur), (b, c, low_resolution)]
    changed = [op(x[lo:hi]) for lo, hi, op in ops if hi > lo]
    if not changed:
        return x
    out = torch.cat(changed)  # (c, C, H, W): the changed images, in batch order
    return torch.cat([x[:c] + strength[:c] * (out - x[:c]), x[c:]])
