"""Cheap data augmentation on whole batches of tensors (CPU or GPU): one random affine transform per
image, applied to the batch with a single affine_grid + grid_sample. No per-image Python work."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(x: torch.Tensor, shift: float = 0.0, rotate: float = 0.0, scale: float = 0.0,
                  flip: bool = False) -> torch.Tensor:
    """x: (N, 1, H, W) floats with a black (0) background, e.g. pixels / 255.

    shift: up to this many pixels in x and y; whole pixels when there is no rotation or scaling, so
    the image is moved, not blurred. rotate: up to +-degrees. scale: zoom by 1 +- scale.
    flip: mirror left-right with probability 1/2 (Fashion-MNIST; never for digits)."""
    if not (shift or rotate or scale or flip):
        return x
    if not (rotate or scale):
        return shift_flip(x, int(shift), flip)
    n, _, h, w = x.shape
    dev, dt = x.device, torch.float32
    uniform = lambda: torch.rand(n, device=dev, dtype=dt) * 2 - 1  # noqa: E731
    tx, ty = uniform() * shift, uniform() * shift
    angle = uniform() * math.radians(rotate)
    zoom = 1 + uniform() * scale
    mirror = torch.where(torch.rand(n, device=dev) < 0.5, -1.0, 1.0).to(dt) if flip else torch.ones(n, device=dev, dtype=dt)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # theta maps output coordinates to input coordinates in [-1, 1]; one pixel is 2/size.
    theta = torch.stack([torch.stack([cos * mirror, -sin, tx * 2 / w], 1),
                         torch.stack([sin * mirror, cos, ty * 2 / h], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False).to(x.dtype)


def shift_flip(x: torch.Tensor, shift: int, flip: bool) -> torch.Tensor:
    """Whole-pixel shifts of up to `shift` in x and y (and mirroring): an exact copy of the pixels,
    one gather for the batch from a zero-padded copy."""
    n, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (shift, shift, shift, shift))
    dy = torch.randint(-shift, shift + 1, (n, 1), device=dev)
    dx = torch.randint(-shift, shift + 1, (n, 1), device=dev)
    rows = torch.arange(h, device=dev) + shift - dy                      # (n, h)
    cols = torch.arange(w, device=dev).expand(n, w)
    if flip:
        cols = torch.where(torch.rand(n, 1, device=dev) < 0.5, w - 1 - cols, cols)
    cols = cols + shift - dx                                              # (n, w)
    batch = torch.arange(n, device=dev)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_erase(x: torch.Tensor, p: float, max_area: float = 0.25) -> torch.Tensor:
    """Blank one random rectangle (up to max_area of the image, any aspect) in a share p of the
    images: the network cannot rely on any single part of a garment (Zhong et al., random erasing)."""
    if p <= 0:
        return x
    n, _, h, w = x.shape
    dev = x.device
    area = torch.rand(n, device=dev) * max_area * h * w
    aspect = torch.exp((torch.rand(n, device=dev) * 2 - 1) * math.log(3))
    eh = (area * aspect).sqrt().clamp(1, h).floor()
    ew = (area / aspect).sqrt().clamp(1, w).floor()
    y0 = (torch.rand(n, device=dev) * (h - eh + 1)).floor()
    x0 = (torch.rand(n, device=dev) * (w - ew + 1)).floor()
    rows = torch.arange(h, device=dev)[None, :]
    cols = torch.arange(w, device=dev)[None, :]
    inside = (((rows >= y0[:, None]) & (rows < (y0 + eh)[:, None]))[:, :, None]
              & ((cols >= x0[:, None]) & (cols < (x0 + ew)[:, None]))[:, None, :])
    inside &= (torch.rand(n, device=dev) < p)[:, None, None]
    return x.masked_fill(inside[:, None], 0.0)
