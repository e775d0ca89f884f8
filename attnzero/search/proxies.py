"""Proxy image-classification tasks for the search: an embedded default and user datasets.

A proxy is held in memory as float tensors (the proxy budget is seconds per candidate, so every
proxy is small): :class:`ProxyData` with a training split, a **validation split carved from the
training data** with a fixed seed, and a test split.

Splits and what reads them: the search objective, the rejection protocol, the fidelity tool and the
bench score are validation accuracies. Test *labels* are read only by
:meth:`ProxyData.test_accuracy`, which scores test-set predictions recorded during training (see
:func:`attnzero.search.train.train_proxy`); the search calls it for its final Pareto front and the
bench for its separate test column, never to select.

Specs (``--proxy``):

* ``scenes`` -- procedural 16x16 cluttered scenes of shapes over textured backgrounds, 4 classes
  (:mod:`attnzero.search.scenes`); no download, no files. Options as
  ``scenes?train=4000&val=1000&test=1000&classes=4&clutter=2&size=16&seed=0`` (the defaults). The
  search's default, :data:`DEFAULT_PROXY`, is ``scenes?train=14000&val=4000`` (more images, and a
  validation accuracy four times less noisy; ``docs/fidelity/DESIGN.md``).
* ``relational`` -- the previous default, the 16x16 colour-sum task below.
  Options as ``relational?train=3000&val=500&test=500&classes=3&distractors=0&noise=0.2&seed=0``
  (the defaults; ``train`` counts the images left for training after the validation split).
* ``imagefolder:PATH`` -- an ImageNet-style folder (``PATH/train/<class>/*.jpg`` and
  ``PATH/val/<class>/...``; a folder without ``train``/``val`` is split 80/20 by a fixed seed).
* ``cifar10:ROOT`` / ``cifar100:ROOT`` -- torchvision CIFAR from a local copy (never downloaded).

Options after ``?`` apply to every proxy: ``train`` / ``val`` / ``test`` (subset sizes, fixed-seed
subsets; ``val`` images are carved from the training data, default 10 % of it for folders and CIFAR),
``size`` (image side; resize for folder/CIFAR proxies).

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

import base64
import os
from typing import Dict, Optional, Tuple
from urllib.parse import parse_qsl

import numpy as np
import torch
import torch.nn.functional as F

from .scenes import make_scenes

__all__ = ['ProxyData', 'ProxyError', 'load_proxy', 'make_relational', 'parse_proxy_spec',
           'PROXY_KINDS', 'DEFAULT_PROXY', 'encode_predictions', 'decode_predictions']

PROXY_KINDS = ('scenes', 'relational', 'imagefolder', 'cifar10', 'cifar100')
#: the embedded default proxy of the search, the bench builder and the fidelity tool (measured by
#: ``docs/fidelity/default``)
DEFAULT_PROXY = 'scenes?train=14000&val=4000'
_EMBEDDED = ('scenes', 'relational')


class ProxyError(ValueError):
    """A proxy spec that cannot be loaded (unknown kind, missing folder, bad option)."""


class ProxyData:
    """An in-memory proxy task (images normalised, NCHW float32): ``train_x/train_y``,
    ``val_x/val_y`` (carved from the training data) and ``test_x`` with its labels kept private.

    Test labels are only read through :meth:`test_accuracy` (counted in ``test_label_reads``), so
    that code which must never select on the test split can be checked not to."""

    def __init__(self, name: str, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor,
                 val_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 num_classes: int, patch_size: int = 4) -> None:
        self.name = name
        #: the proxy ViTs' patch size for this task (the architectures' own default is overridden)
        self.patch_size = patch_size
        self.train_x, self.train_y = train_x, train_y
        self.val_x, self.val_y = val_x, val_y
        self.test_x = test_x
        self._test_y = test_y
        self.num_classes = num_classes
        self.test_label_reads = 0

    @property
    def img_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def chance(self) -> float:
        return 1.0 / self.num_classes

    def test_accuracy(self, predictions) -> float:
        """Accuracy of test-set ``predictions`` (class indices, or their :func:`encode_predictions`
        text) -- the only reader of the test labels."""
        if isinstance(predictions, str):
            predictions = decode_predictions(predictions)
        pred = torch.as_tensor(predictions, dtype=torch.int64)
        if pred.shape != self._test_y.shape:
            raise ValueError(f'{len(pred)} test predictions for {len(self._test_y)} test images of {self.name!r}')
        self.test_label_reads += 1
        return float((pred == self._test_y).float().mean())

    def describe(self) -> str:
        return (f'{self.name}: {len(self.train_x)} train / {len(self.val_x)} val / {len(self.test_x)} '
                f'test images of {self.img_size}x{self.img_size}, {self.num_classes} classes')


def encode_predictions(pred: torch.Tensor) -> str:
    """Class indices (< 256) as compact text (base64 of uint8) for JSON records."""
    arr = pred.to(torch.int64).numpy()
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError('encode_predictions: class indices must be in 0..255')
    return base64.b64encode(arr.astype(np.uint8).tobytes()).decode('ascii')


def decode_predictions(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text.encode('ascii')), dtype=np.uint8).astype(np.int64)


def _carve_val(x: torch.Tensor, y: torch.Tensor, n_val: int, seed: int, spec: str
               ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split ``n_val`` images off the training data by a fixed-seed permutation:
    ``(train_x, train_y, val_x, val_y)``."""
    if not 1 <= n_val < len(x):
        raise ProxyError(f'{spec}: val={n_val} must be in 1..{len(x) - 1} (the training data has {len(x)} images)')
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(10_007 + seed))
    va, tr = perm[:n_val], perm[n_val:]
    return x[tr], y[tr], x[va], y[va]


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
_INT_OPTS = {'train', 'val', 'test', 'classes', 'distractors', 'seed', 'size', 'grid', 'cell', 'min_dist',
             'clutter'}
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
    if kind not in _EMBEDDED and not path:
        raise ProxyError(f'proxy {kind!r} needs a path: {kind}:/path/to/data')
    if kind in _EMBEDDED and path:
        raise ProxyError(f'the embedded proxy {kind!r} takes no path (got {path!r})')
    return kind, path, opts


_CACHE: Dict[str, ProxyData] = {}


def load_proxy(spec: str) -> ProxyData:
    """Load (and memoise per process) the proxy described by ``spec``."""
    if spec in _CACHE:
        return _CACHE[spec]
    kind, path, opts = parse_proxy_spec(spec)
    if kind == 'scenes':
        data = _load_scenes(opts)
    elif kind == 'relational':
        data = _load_relational(opts)
    elif kind == 'imagefolder':
        data = _load_folder(path, opts)
    else:
        data = _load_cifar(kind, path, opts)
    data.name = spec
    _CACHE[spec] = data
    return data


def _sizes(kind: str, opts: Dict[str, float], train: int, val: int, test: int) -> Tuple[int, int, int]:
    n_train, n_val, n_test = (int(opts.get('train', train)), int(opts.get('val', val)),
                              int(opts.get('test', test)))
    if n_train < 1 or n_val < 1 or n_test < 1:
        raise ProxyError(f'{kind}: train, val and test must be >= 1, got train={n_train}, val={n_val}, test={n_test}')
    return n_train, n_val, n_test


def _embedded(kind: str, make, opts: Dict[str, float], sizes: Tuple[int, int, int], classes: int,
              patch_size: int, **kw) -> ProxyData:
    """An embedded task: the training stream (train + val images, val carved by a fixed seed) and
    the test stream are disjoint random streams."""
    n_train, n_val, n_test = sizes
    seed = int(opts.get('seed', 0))
    x, y = make(n_train + n_val, seed * 2 + 1, classes=classes, **kw)
    tx, ty, vx, vy = _carve_val(torch.as_tensor(x), torch.as_tensor(y), n_val, seed, kind)
    ex, ey = make(n_test, seed * 2 + 2, classes=classes, **kw)
    return ProxyData(kind, tx, ty, vx, vy, torch.as_tensor(ex), torch.as_tensor(ey), classes, patch_size)


def _load_scenes(opts: Dict[str, float]) -> ProxyData:
    for bad in ('distractors', 'grid', 'cell', 'min_dist', 'noise'):
        if bad in opts:
            raise ProxyError(f'scenes: unknown option {bad!r}; scenes takes train, val, test, classes, '
                             f'clutter, size, seed')
    try:
        return _embedded('scenes', make_scenes, opts, _sizes('scenes', opts, 4000, 1000, 1000),
                         int(opts.get('classes', 4)), 2, size=int(opts.get('size', 16)),
                         clutter=int(opts.get('clutter', 2)))
    except ProxyError:
        raise
    except ValueError as e:
        raise ProxyError(str(e)) from None


def _load_relational(opts: Dict[str, float]) -> ProxyData:
    for bad in ('size', 'clutter'):
        if bad in opts:
            raise ProxyError(f'relational: unknown option {bad!r} (the geometry is set by grid= and cell=)')
    return _embedded('relational', make_relational, opts, _sizes('relational', opts, 3000, 500, 500),
                     int(opts.get('classes', 3)), 4, distractors=int(opts.get('distractors', 0)),
                     noise=float(opts.get('noise', 0.2)), grid=int(opts.get('grid', 4)),
                     cell=int(opts.get('cell', 4)), min_dist=int(opts.get('min_dist', 2)))


def _subset(x: torch.Tensor, y: torch.Tensor, n: Optional[int], seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    if n is None or n >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


def _to_tensor(images, size: int) -> torch.Tensor:
    """PIL images / uint8 HWC arrays -> float NCHW in [0, 1] at ``size``."""
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


def _normalise(tx: torch.Tensor, *others: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Per-channel standardisation with the training split's statistics."""
    mean = tx.mean(dim=(0, 2, 3), keepdim=True)
    std = tx.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return tuple((t - mean) / std for t in (tx,) + others)


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

    n_val = _val_count(opts, len(tr_items))
    tr_items = pick(tr_items, None if opts.get('train') is None else int(opts['train']) + n_val)
    te_items = pick(va_items, opts.get('test'))
    if not tr_items or not te_items:
        raise ProxyError(f'imagefolder proxy {path!r}: no images found')
    tx = _to_tensor([loader(p) for p, _ in tr_items], size)
    ex = _to_tensor([loader(p) for p, _ in te_items], size)
    ty = torch.tensor([c for _, c in tr_items], dtype=torch.int64)
    ey = torch.tensor([c for _, c in te_items], dtype=torch.int64)
    tx, ty, vx, vy = _carve_val(tx, ty, n_val, seed, f'imagefolder proxy {path!r}')
    (tx, vx, ex) = _normalise(tx, vx, ex)
    return ProxyData('imagefolder', tx, ty, vx, vy, ex, ey, len(classes))


def _val_count(opts: Dict[str, float], n_train_pool: int) -> int:
    """Validation images carved from the training data: ``val=`` or 10 % of the training images
    used (at least one)."""
    if 'val' in opts:
        return int(opts['val'])
    n = min(n_train_pool, int(opts['train'])) if 'train' in opts else n_train_pool
    return max(1, n // 10)


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
    n_val = _val_count(opts, len(tr.data))
    n_tr = None if opts.get('train') is None else int(opts['train']) + n_val
    tx, ty = _subset(torch.from_numpy(tr.data), torch.tensor(tr.targets), n_tr, seed)
    ex, ey = _subset(torch.from_numpy(va.data), torch.tensor(va.targets), opts.get('test'), seed + 1)
    tx, ty, vx, vy = _carve_val(tx, ty, n_val, seed, f'{kind} proxy {path!r}')
    tx, vx, ex = _normalise(*(_to_tensor(t.numpy(), size) for t in (tx, vx, ex)))
    return ProxyData(kind, tx, ty, vx, vy, ex, ey, 10 if kind == 'cifar10' else 100)
