"""The embedded default proxy task: procedural cluttered scenes of shapes ("scenes").

Nothing is downloaded and no image file ships: every image is drawn from a seed, so the task is
the same on every machine and in every worker.

An image (default 16x16 RGB; 64 tokens at the proxies' patch size 2, so that -- as in the paper's
CIFAR-at-224 proxy, where a 16-pixel patch covers about two source pixels -- a token sees only a
sliver of an object and shape must be assembled from neighbouring tokens) holds

* a **background** with natural-image statistics: a smooth random colour field (a coarse random
  grid, bilinearly upsampled), a sinusoidal grating of random frequency, orientation and phase (a
  texture), a linear illumination gradient and pixel noise;
* the **target**: one of ``classes`` shapes (:data:`SHAPES`: disc, ring, square, triangle, plus,
  L, half-disc, X; the first ``classes`` are used) at a random position, scale (radius
  ``r_min..r_max`` times the image side) and rotation, in a random saturated colour with its own
  stripe texture;
* ``clutter`` **distractors**: smaller shapes of random classes and colours (radius
  ``d_min..d_max`` times the side), drawn after the target, so that they may occlude it.

The label is the class of the target, the *largest* object. Its parts are spread over several
tokens and the distractors are made of the same kinds of parts, so the class follows from relating
neighbouring tokens (locality: a depthwise-conv branch on V, or attention that learns to focus) and
telling the large object from the small ones (context: token mixing). A model without token mixing
(the zoo's ``identity``) sees a bag of slivers and stays well below every mixing attention.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ['SHAPES', 'make_scenes']

#: shape classes, in label order
SHAPES = ('disc', 'ring', 'square', 'triangle', 'plus', 'ell', 'half_disc', 'cross')


def _shape_mask(cls: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean masks of shapes ``cls`` (n,) on unit-radius coordinates ``u, v`` (n, H, W)."""
    c = cls[:, None, None]
    r2 = u * u + v * v
    au, av = np.abs(u), np.abs(v)
    masks = (
        lambda: r2 <= 1.0,                                                          # disc
        lambda: (r2 <= 1.0) & (r2 >= 0.36),                                         # ring
        lambda: np.maximum(au, av) <= 0.8,                                          # square
        lambda: (v >= -0.55) & (np.sqrt(3.0) * au + v <= 1.0),                      # triangle
        lambda: ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0)),          # plus
        lambda: (((u >= -0.9) & (u <= -0.3) & (av <= 0.9))                          # ell
                 | ((v >= 0.3) & (v <= 0.9) & (au <= 0.9))),
        lambda: (r2 <= 1.0) & (v >= -0.15),                                         # half disc
        lambda: ((np.abs(u - v) <= 0.45) | (np.abs(u + v) <= 0.45)) & (r2 <= 1.0),  # X
    )
    out = np.zeros(u.shape, dtype=bool)
    for k in np.unique(cls):
        sel = c[:, 0, 0] == k
        out[sel] = masks[int(k)]()[sel]
    return out


def _random_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """Saturated random colours in [-1, 1]^3 (n, 3): one channel high, one low, one random."""
    col = rng.uniform(-1.0, 1.0, size=(n, 3))
    hi = rng.integers(3, size=n)
    lo = (hi + rng.integers(1, 3, size=n)) % 3
    col[np.arange(n), hi] = rng.uniform(0.6, 1.0, size=n)
    col[np.arange(n), lo] = rng.uniform(-1.0, -0.6, size=n)
    return col.astype(np.float32)


def _background(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    g = 4
    coarse = rng.normal(0.0, 0.35, size=(n, 3, g, g)).astype(np.float32)
    t = (np.arange(size, dtype=np.float32) + 0.5) / size * (g - 1)
    i0 = np.clip(np.floor(t).astype(int), 0, g - 2)
    w = (t - i0)[:, None]
    rows = coarse[:, :, i0] * (1 - w) + coarse[:, :, i0 + 1] * w               # (n, 3, S, g)
    wc = t - i0
    x = rows[..., i0] * (1 - wc) + rows[..., i0 + 1] * wc                      # (n, 3, S, S)
    scale = 32.0 / size  # texture frequencies in cycles per 32 pixels, whatever the image side
    freq = rng.uniform(0.15, 0.6, size=n)[:, None, None] * scale
    ang = rng.uniform(0.0, np.pi, size=n)[:, None, None]
    phase = rng.uniform(0.0, 2 * np.pi, size=n)[:, None, None]
    grating = np.sin(freq * (np.cos(ang) * xx + np.sin(ang) * yy) + phase)
    gcol = rng.uniform(-0.25, 0.25, size=(n, 3))[:, :, None, None]
    x = x + gcol * grating[:, None]
    slope = rng.normal(0.0, 0.3, size=(n, 2)) / size
    x = x + (slope[:, 0, None, None] * (yy - size / 2) + slope[:, 1, None, None] * (xx - size / 2))[:, None]
    return x.astype(np.float32)


def _draw(rng: np.random.Generator, x: np.ndarray, cls: np.ndarray, r_lo: float, r_hi: float,
          margin: float) -> None:
    """Paint one object of class ``cls[i]`` into each image ``x[i]`` (n, 3, H, W), in place."""
    n, _, H, W = x.shape
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32) + 0.5
    r = rng.uniform(r_lo, r_hi, size=n)
    cy = rng.uniform(margin * r, H - margin * r)
    cx = rng.uniform(margin * r, W - margin * r)
    th = rng.uniform(0.0, 2 * np.pi, size=n)
    cos, sin = np.cos(th)[:, None, None], np.sin(th)[:, None, None]
    dy = (yy[None] - cy[:, None, None]) / r[:, None, None]
    dx = (xx[None] - cx[:, None, None]) / r[:, None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    mask = _shape_mask(cls, u, v)
    colour = _random_colours(rng, n)
    f = rng.uniform(0.5, 2.0, size=n)[:, None, None]
    a = rng.uniform(0.0, np.pi, size=n)[:, None, None]
    tex = (1.0 + 0.25 * np.sin(f * (np.cos(a) * u + np.sin(a) * v) * np.pi * 2)).astype(np.float32)
    paint = colour[:, :, None, None] * tex[:, None]
    np.copyto(x, paint, where=np.broadcast_to(mask[:, None], x.shape))


def make_scenes(n: int, seed: int, classes: int = 4, size: int = 16, clutter: int = 2,
                r_min: float = 0.16, r_max: float = 0.25, d_min: float = 0.0625,
                d_max: float = 0.11, noise: float = 0.15) -> Tuple[np.ndarray, np.ndarray]:
    """``n`` scenes (see the module docstring); deterministic in ``seed``. Radii are fractions of
    the image side ``size``.

    Returns ``(x (n, 3, size, size) float32, y (n,) int64)``; raises ``ValueError`` naming a bad
    argument.
    """
    if not 2 <= classes <= len(SHAPES):
        raise ValueError(f'scenes: classes must be in 2..{len(SHAPES)}, got {classes}')
    if size < 8:
        raise ValueError(f'scenes: size must be >= 8, got {size}')
    if clutter < 0:
        raise ValueError(f'scenes: clutter must be >= 0, got {clutter}')
    if not 0 < d_min <= d_max < r_min <= r_max <= 0.5:
        raise ValueError(f'scenes: need 0 < d_min <= d_max < r_min <= r_max <= 0.5, got d_min={d_min}, '
                         f'd_max={d_max}, r_min={r_min}, r_max={r_max}')
    rng = np.random.default_rng(seed)
    x = _background(rng, n, size)
    y = rng.integers(classes, size=n).astype(np.int64)
    _draw(rng, x, y, r_min * size, r_max * size, margin=0.9)
    for _ in range(clutter):
        _draw(rng, x, rng.integers(classes, size=n), d_min * size, d_max * size, margin=1.0)
    x += rng.normal(0.0, noise, size=x.shape).astype(np.float32)
    return x, y
