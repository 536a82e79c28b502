"""Batched on-device augmentation: one random affine warp per image, one grid_sample per batch."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def affine(x: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
           flip: torch.Tensor | None = None) -> torch.Tensor:
    """Warp each image: mirror left-right where `flip`, rotate by `angle` degrees, zoom by `scale`,
    then move by `shift` pixels.

    x: (N, C, H, W) float; angle, scale: (N,); shift: (N, 2) as (dx, dy) pixels, +x right,
    +y down; flip: (N,) bool or None. Bilinear sampling, zeros (background) outside.
    Returns (N, C, H, W).
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
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    max_shift: float = 2.0,
    max_rotation: float = 10.0,
    max_scale: float = 0.1,
    flip: bool = False,
) -> torch.Tensor:
    """x (N, C, H, W) warped by uniformly random shifts (pixels), rotations (degrees) and zooms,
    and mirrored left-right with probability 1/2 when `flip` (clothes, never digits)."""
    n = x.shape[0]
    u = torch.rand(n, 5 if flip else 4, generator=generator, device=x.device) * 2 - 1  # (N, 4|5) in [-1, 1)
    return affine(x, angle=u[:, 0] * max_rotation, scale=1 + u[:, 1] * max_scale,
                  shift=u[:, 2:4] * max_shift, flip=u[:, 4] < 0 if flip else None)
