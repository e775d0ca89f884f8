"""Proxy image-classification tasks for the search: an embedded default and user datasets.

A proxy is held in memory as float tensors (the proxy budget is seconds per candidate, so every
proxy is small): :class:`ProxyData` ``(train_x, train_y, test_x, test_y)``.

Specs (``--proxy``):

* ``relational`` (default) -- the embedded procedural task below; no download, no files.
  Options as ``relational?train=3000&test=500&classes=3&distractors=0&noise=0.2&seed=0``
  (the defaults).
* ``imagefolder:PATH`` -- an ImageNet-style folder (``PATH/train/<class>/*.jpg`` and
  ``PATH/val/<class>/...``; a folder without ``train``/``val`` is split 80/20 by a fixed seed).
* ``cifar10:ROOT`` / ``cifar100:ROOT`` -- torchvision CIFAR from a local copy (never downloaded).

Options after ``?`` apply to every proxy: ``train`` / ``test`` (subset sizes, fixed-seed subsets),
``size`` (resize side for folder/CIFAR proxies).

The embedded task ("relational colour sum")
-------------------------------------------
A 16x16 RGB image is a 4x4 grid of 4x4 cells (16 tokens at patch 4) over Gaussian noise. Two key
objects sit in cells at Chebyshev distance >= 2 (so they are never neighbours, and never in the
same 2x2 quadrant -- a stride-2 patch merge cannot join them): object A is a filled square, object
B a hollow ring; each has a colour ``a``, ``b`` from a palette of ``K`` colours (default 3).
Optionally, ``distractors`` crosses with random colours sit in other cells (default 0: with
distractors the task is harder still for linear attentions and less graded within a few seconds of
training). The label is ``(a + b) mod K``.

Why it needs token mixing: without mixing, a ViT's logits are a sum over tokens of per-token
functions (``sum_t w_y . phi(token_t)``, mean pooling then a linear head), i.e. additively separable
in A and B. ``(a + b) mod K`` with uniform ``a, b`` gives every single token zero information about
the label, and no additive score ``g_y(a) + h_y(b)`` computes it, so a no-mixing model stays at
chance (1/K) while attention that brings A and B together solves it. With a cls token (DeiT) a
no-mixing model sees no patch at all.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Optional, Tuple
from urllib.parse import parse_qsl

import numpy as np
import torch

__all__ = ['ProxyData', 'ProxyError', 'load_proxy', 'make_relational', 'parse_proxy_spec',
           'PROXY_KINDS']

PROXY_KINDS = ('relational', 'imagefolder', 'cifar10', 'cifar100')


class ProxyError(ValueError):
    """A proxy spec that cannot be loaded (unknown kind, missing folder, bad option)."""


@dataclass
class ProxyData:
    """An in-memory proxy task (images normalised, NCHW float32)."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

    @property
    def img_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def chance(self) -> float:
        return 1.0 / self.num_classes

    def describe(self) -> str:
        return (f'{self.name}: {len(self.train_x)} train / {len(self.test_x)} test images of '
                f'{self.img_size}x{self.img_size}, {self.num_classes} classes')


# ---- the embedded task ----------------------------------------------------------------------
# palette of saturated colours (per-channel +-1 around the noise background)
_PALETTE = np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1],
                     [1, 1, 1], [-1, -1, -1]], dtype=np.float32)


def _shapes(cell: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    solid = np.ones((cell, cell), np.float32)
    ring = np.ones((cell, cell), np.float32)
    ring[1:-1, 1:-1] = 0
    cross = np.zeros((cell, cell), np.float32)
    lo, hi = cell // 4, cell - cell // 4
    cross[lo:hi, :] = 1
    cross[:, lo:hi] = 1
    return solid, ring, cross


def make_relational(n: int, seed: int, classes: int = 3, distractors: int = 0, noise: float = 0.2,
                    grid: int = 4, cell: int = 4, min_dist: int = 2) -> Tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of the relational colour-sum task (see the module docstring); deterministic in
    ``seed``. Returns ``(x (n, 3, grid*cell, grid*cell) float32, y (n,) int64)``."""
    if not 2 <= classes <= len(_PALETTE):
        raise ProxyError(f'relational: classes must be in 2..{len(_PALETTE)}, got {classes}')
    if distractors < 0 or distractors > grid * grid - 2:
        raise ProxyError(f'relational: distractors must be in 0..{grid * grid - 2}, got {distractors}')
    rng = np.random.default_rng(seed)
    side = grid * cell
    x = rng.normal(0.0, noise, size=(n, 3, side, side)).astype(np.float32)
    y = np.empty(n, dtype=np.int64)
    solid, ring, cross = _shapes(cell)
    cells = np.arange(grid * grid)
    rows, cols = cells // grid, cells % grid
    far = np.maximum(np.abs(rows[:, None] - rows[None]), np.abs(cols[:, None] - cols[None])) >= min_dist
    pairs = np.argwhere(far)
    if len(pairs) == 0:
        raise ProxyError(f'relational: no two cells of a {grid}x{grid} grid are {min_dist} apart')
    for i in range(n):
        pa, pb = pairs[rng.integers(len(pairs))]
        a, b = int(rng.integers(classes)), int(rng.integers(classes))
        y[i] = (a + b) % classes
        free = np.setdiff1d(cells, [pa, pb])
        objs = [(pa, solid, a), (pb, ring, b)]
        for p in rng.choice(free, size=distractors, replace=False):
            objs.append((p, cross, int(rng.integers(classes))))
        for p, shape, colour in objs:
            r, c = divmod(int(p), grid)
            x[i, :, r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] += shape[None] * _PALETTE[colour][:, None, None]
    return torch.from_numpy(x), torch.from_numpy(y)


# ---- spec parsing -------------------------------------------------------------------------
_INT_OPTS = {'train', 'test', 'classes', 'distractors', 'seed', 'size', 'grid', 'cell', 'min_dist'}
_FLOAT_OPTS = {'noise'}


def parse_proxy_spec(spec: str) -> Tuple[str, str, Dict[str, float]]:
    """``'kind[:path][?k=v&...]'`` -> ``(kind, path, options)``; raises :class:`ProxyError`."""
    if not isinstance(spec, str) or not spec.strip():
        raise ProxyError(f'empty proxy spec {spec!r}; known kinds: {", ".join(PROXY_KINDS)}')
    body, _, query = spec.strip().partition('?')
    kind, _, path = body.partition(':')
    kind = kind.strip().lower()
    if kind not in PROXY_KINDS:
        raise ProxyError(f'unknown proxy {kind!r} (from {spec!r}); known kinds: {", ".join(PROXY_KINDS)}')
    opts: Dict[str, float] = {}
    for key, val in parse_qsl(query, keep_blank_values=True):
        if key in _INT_OPTS:
            try:
                opts[key] = int(val)
            except ValueError:
                raise ProxyError(f'proxy option {key}={val!r} in {spec!r} is not an integer') from None
        elif key in _FLOAT_OPTS:
            try:
                opts[key] = float(val)
            except ValueError:
                raise ProxyError(f'proxy option {key}={val!r} in {spec!r} is not a number') from None
        else:
            raise ProxyError(f'unknown proxy option {key!r} in {spec!r}; known: '
                             f'{", ".join(sorted(_INT_OPTS | _FLOAT_OPTS))}')
    if kind != 'relational' and not path:
        raise ProxyError(f'proxy {kind!r} needs a path: {kind}:/path/to/data')
    if kind == 'relational' and path:
        raise ProxyError(f'the embedded proxy takes no path (got {path!r})')
    return kind, path, opts


_CACHE: Dict[str, ProxyData] = {}


def load_proxy(spec: str) -> ProxyData:
    """Load (and memoise per process) the proxy described by ``spec``."""
    if spec in _CACHE:
        return _CACHE[spec]
    kind, path, opts = parse_proxy_spec(spec)
    if kind == 'relational':
        data = _load_relational(opts)
    elif kind == 'imagefolder':
        data = _load_folder(path, opts)
    else:
        data = _load_cifar(kind, path, opts)
    data.name = spec
    _CACHE[spec] = data
    return data


def _load_relational(opts: Dict[str, float]) -> ProxyData:
    if 'size' in opts:
        raise ProxyError('the embedded proxy has a fixed geometry: use grid= and cell=, not size=')
    n_train, n_test = int(opts.get('train', 3000)), int(opts.get('test', 500))
    if n_train < 1 or n_test < 1:
        raise ProxyError(f'relational: train and test must be >= 1, got {n_train}, {n_test}')
    seed = int(opts.get('seed', 0))
    kw = dict(classes=int(opts.get('classes', 3)), distractors=int(opts.get('distractors', 0)),
              noise=float(opts.get('noise', 0.2)), grid=int(opts.get('grid', 4)),
              cell=int(opts.get('cell', 4)), min_dist=int(opts.get('min_dist', 2)))
    # train and test come from disjoint random streams
    tx, ty = make_relational(n_train, seed * 2 + 1, **kw)
    vx, vy = make_relational(n_test, seed * 2 + 2, **kw)
    return ProxyData('relational', tx, ty, vx, vy, kw['classes'])


def _subset(x: torch.Tensor, y: torch.Tensor, n: Optional[int], seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    if n is None or n >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


def _to_tensor(images, size: int) -> torch.Tensor:
    """PIL images / uint8 HWC arrays -> float NCHW in [0, 1] at ``size``."""
    import torch.nn.functional as F

    arrs = []
    for im in images:
        if hasattr(im, 'convert'):
            im = im.convert('RGB').resize((size, size))
            arr = np.asarray(im, dtype=np.uint8)
        else:
            arr = np.asarray(im, dtype=np.uint8)
        arrs.append(arr)
    x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False)
    return x


def _normalise(tx: torch.Tensor, vx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel standardisation with the training set's statistics."""
    mean = tx.mean(dim=(0, 2, 3), keepdim=True)
    std = tx.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (tx - mean) / std, (vx - mean) / std


def _load_folder(path: str, opts: Dict[str, float]) -> ProxyData:
    try:
        from torchvision.datasets import ImageFolder
    except ImportError as e:  # pragma: no cover
        raise ProxyError('the imagefolder proxy needs torchvision') from e
    root = os.path.expanduser(path)
    if not os.path.isdir(root):
        raise ProxyError(f'imagefolder proxy: {path!r} is not a directory')
    size = int(opts.get('size', 32))
    seed = int(opts.get('seed', 0))
    tr_dir, va_dir = os.path.join(root, 'train'), os.path.join(root, 'val')
    try:
        if os.path.isdir(tr_dir) and os.path.isdir(va_dir):
            tr, va = ImageFolder(tr_dir), ImageFolder(va_dir)
            if tr.classes != va.classes:
                raise ProxyError(f'imagefolder proxy {path!r}: train and val have different classes')
            tr_items, va_items, classes = tr.samples, va.samples, tr.classes
            loader = tr.loader
        else:
            ds = ImageFolder(root)
            perm = np.random.default_rng(seed).permutation(len(ds.samples))
            cut = int(0.8 * len(perm))
            tr_items = [ds.samples[i] for i in perm[:cut]]
            va_items = [ds.samples[i] for i in perm[cut:]]
            classes, loader = ds.classes, ds.loader
    except (FileNotFoundError, RuntimeError) as e:
        raise ProxyError(f'imagefolder proxy {path!r}: {e}') from e
    rng = np.random.default_rng(seed)

    def pick(items, n):
        if n is not None and n < len(items):
            items = [items[i] for i in sorted(rng.choice(len(items), size=n, replace=False))]
        return items

    tr_items = pick(tr_items, opts.get('train'))
    va_items = pick(va_items, opts.get('test'))
    if not tr_items or not va_items:
        raise ProxyError(f'imagefolder proxy {path!r}: no images found')
    tx = _to_tensor([loader(p) for p, _ in tr_items], size)
    vx = _to_tensor([loader(p) for p, _ in va_items], size)
    tx, vx = _normalise(tx, vx)
    ty = torch.tensor([c for _, c in tr_items], dtype=torch.int64)
    vy = torch.tensor([c for _, c in va_items], dtype=torch.int64)
    return ProxyData('imagefolder', tx, ty, vx, vy, len(classes))


def _load_cifar(kind: str, path: str, opts: Dict[str, float]) -> ProxyData:
    try:
        from torchvision import datasets
    except ImportError as e:  # pragma: no cover
        raise ProxyError(f'the {kind} proxy needs torchvision') from e
    root = os.path.expanduser(path)
    if not os.path.isdir(root):
        raise ProxyError(f'{kind} proxy: {path!r} is not a directory')
    cls = datasets.CIFAR10 if kind == 'cifar10' else datasets.CIFAR100
    try:
        tr = cls(root, train=True, download=False)
        va = cls(root, train=False, download=False)
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
        raise ProxyError(f'{kind} proxy: no {kind} copy under {path!r} ({e}); this tool never '
                         f'downloads -- put the python-version archive contents there') from e
    size = int(opts.get('size', 32))
    seed = int(opts.get('seed', 0))
    tx, ty = _subset(torch.from_numpy(tr.data), torch.tensor(tr.targets), opts.get('train'), seed)
    vx, vy = _subset(torch.from_numpy(va.data), torch.tensor(va.targets), opts.get('test'), seed + 1)
    tx, vx = _normalise(_to_tensor(tx.numpy(), size), _to_tensor(vx.numpy(), size))
    return ProxyData(kind, tx, ty, vx, vy, 10 if kind == 'cifar10' else 100)
