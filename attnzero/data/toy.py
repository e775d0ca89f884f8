"""Write small, deterministic toy datasets in the real on-disk formats of COCO, ADE20K and ImageNet.

    python tools/make_toy_data.py data/toy                 # all three
    python tools/make_toy_data.py data/toy --task coco     # one of coco | ade | imagenet | all

The images show coloured shapes on a noisy background; every shape class has its own colour and
geometry, so a model can learn them in a few CPU minutes. The layout under ``OUT_DIR``:

* ``coco/`` -- ``annotations/instances_{train,val}2017.json`` (COCO instances: boxes, areas,
  polygon masks for squares/triangles and uncompressed RLE masks for discs) and
  ``{train,val}2017/*.jpg``: what ``mmdet::_base_/datasets/coco_instance.py`` reads.
* ``ade/ADEChallengeData2016/`` -- ``images/{training,validation}/ADE_*.jpg`` and
  ``annotations/{training,validation}/ADE_*.png`` label maps in ADE20K's convention (0 = "other",
  ignored through ``reduce_zero_label``; 1..150 = the ADE classes, here 1 wall, 2 building, 3 sky,
  5 tree): what ``mmseg::_base_/datasets/ade20k.py`` reads.
* ``imagenet/`` -- ``train/<wnid>/*.JPEG``, ``val/<wnid>/*.JPEG`` and ``meta/{train,val}.txt``
  (``<wnid>/<file> <label>`` lines), as mmpretrain's ``ImageNet`` dataset reads them.

Only numpy, Pillow and json: no OpenMMLab import. The same arguments always give the same bytes.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

# shape classes: name -> (RGB colour, geometry)
SHAPES: List[Tuple[str, Tuple[int, int, int], str]] = [
    ('square', (220, 40, 40), 'square'),
    ('disc', (40, 200, 60), 'disc'),
    ('triangle', (40, 80, 230), 'triangle'),
]
# ADE20K label values (1-based ADE indices; 0 = unlabelled) used by the toy segmentation set
ADE_BACKGROUND = 1  # wall
ADE_SHAPE_LABELS = {'square': 2, 'disc': 3, 'triangle': 5}  # building, sky, tree
ADE_CLASSES = ('wall', 'building', 'sky', 'tree')
# ImageNet toy classes: (wnid, shape) -- four classes: the three shapes and a cross
IMAGENET_CLASSES: List[Tuple[str, str, Tuple[int, int, int]]] = [
    ('n00000001', 'square', (220, 40, 40)),
    ('n00000002', 'disc', (40, 200, 60)),
    ('n00000003', 'triangle', (40, 80, 230)),
    ('n00000004', 'cross', (230, 200, 40)),
]

COCO_SPLITS = {'train2017': 32, 'val2017': 8}
ADE_SPLITS = {'training': 32, 'validation': 8}
IMAGENET_SPLITS = {'train': 24, 'val': 8}  # images per class


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.integers(90, 150)
    noise = rng.normal(0.0, 12.0, size=(h, w, 3))
    grad = np.linspace(-15, 15, w)[None, :, None]
    return np.clip(base + noise + grad, 0, 255).astype(np.uint8)


def _shape_polygon(kind: str, x0: float, y0: float, s: float) -> List[Tuple[float, float]]:
    if kind == 'square':
        return [(x0, y0), (x0 + s, y0), (x0 + s, y0 + s), (x0, y0 + s)]
    if kind == 'triangle':
        return [(x0 + s / 2, y0), (x0 + s, y0 + s), (x0, y0 + s)]
    if kind == 'cross':
        t = s / 3
        return [(x0 + t, y0), (x0 + 2 * t, y0), (x0 + 2 * t, y0 + t), (x0 + s, y0 + t),
                (x0 + s, y0 + 2 * t), (x0 + 2 * t, y0 + 2 * t), (x0 + 2 * t, y0 + s),
                (x0 + t, y0 + s), (x0 + t, y0 + 2 * t), (x0, y0 + 2 * t), (x0, y0 + t),
                (x0 + t, y0 + t)]
    raise ValueError(kind)


def _draw(img: Image.Image, mask: Image.Image, kind: str, x0: float, y0: float, s: float,
          colour: Tuple[int, int, int]) -> List[Tuple[float, float]]:
    """Draw one shape into ``img`` and ``mask`` (value 1); returns its polygon ([] for a disc)."""
    di, dm = ImageDraw.Draw(img), ImageDraw.Draw(mask)
    if kind == 'disc':
        box = [x0, y0, x0 + s, y0 + s]
        di.ellipse(box, fill=colour)
        dm.ellipse(box, fill=1)
        return []
    poly = _shape_polygon(kind, x0, y0, s)
    di.polygon(poly, fill=colour)
    dm.polygon(poly, fill=1)
    return poly


def _place(rng: np.random.Generator, h: int, w: int, n: int, smin: int, smax: int,
           margin: int = 2) -> List[Tuple[int, int, int]]:
    """Up to ``n`` non-overlapping squares ``(x0, y0, size)`` inside an ``h x w`` image."""
    boxes: List[Tuple[int, int, int]] = []
    for _ in range(200):
        if len(boxes) == n:
            break
        s = int(rng.integers(smin, smax + 1))
        x0 = int(rng.integers(margin, w - s - margin))
        y0 = int(rng.integers(margin, h - s - margin))
        if all(x0 + s + margin <= bx or bx + bs + margin <= x0 or y0 + s + margin <= by
               or by + bs + margin <= y0 for bx, by, bs in boxes):
            boxes.append((x0, y0, s))
    return boxes


def _jitter(rng: np.random.Generator, colour: Tuple[int, int, int]) -> Tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in colour)


def rle_encode(mask: np.ndarray) -> Dict:
    """Uncompressed COCO RLE of a binary ``(h, w)`` mask (column-major runs, starting with zeros)."""
    h, w = mask.shape
    flat = np.asarray(mask, dtype=np.uint8).T.reshape(-1)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).astype(int).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {'size': [int(h), int(w)], 'counts': counts}


def make_coco(out: str, seed: int = 0) -> Dict[str, int]:
    root = os.path.join(out, 'coco')
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    categories = [{'id': i + 1, 'name': name, 'supercategory': 'shape'}
                  for i, (name, _, _) in enumerate(SHAPES)]
    counts = {}
    for si, (split, n_img) in enumerate(COCO_SPLITS.items()):
        rng = np.random.default_rng([seed, 1, si])
        os.makedirs(os.path.join(root, split), exist_ok=True)
        images, anns = [], []
        for i in range(n_img):
            h = int(rng.choice([128, 144, 160]))
            w = int(rng.choice([128, 160, 192]))
            img = Image.fromarray(_background(rng, h, w))
            image_id = i + 1
            fname = f'{image_id:012d}.jpg'
            for (x0, y0, s) in _place(rng, h, w, int(rng.integers(1, 5)), 24, 56):
                cat = int(rng.integers(len(SHAPES)))
                name, colour, kind = SHAPES[cat]
                mask_img = Image.new('L', (w, h), 0)
                poly = _draw(img, mask_img, kind, x0, y0, s, _jitter(rng, colour))
                mask = np.array(mask_img, dtype=np.uint8)
                ys, xs = np.nonzero(mask)
                if kind == 'disc':
                    segmentation = rle_encode(mask)
                    bx, by = float(xs.min()), float(ys.min())
                    bbox = [bx, by, float(xs.max() + 1) - bx, float(ys.max() + 1) - by]
                else:
                    flat = [round(float(c), 2) for p in poly for c in p]
                    segmentation = [flat]
                    px, py = flat[0::2], flat[1::2]
                    bbox = [min(px), min(py), max(px) - min(px), max(py) - min(py)]
                anns.append({'id': len(anns) + 1 + 100000 * si, 'image_id': image_id,
                             'category_id': cat + 1, 'segmentation': segmentation,
                             'area': float(mask.sum()), 'bbox': [round(b, 2) for b in bbox],
                             'iscrowd': 0})
            img.save(os.path.join(root, split, fname), quality=95)
            images.append({'id': image_id, 'file_name': fname, 'height': h, 'width': w})
        doc = {'info': {'description': 'attnzero toy COCO (coloured shapes)', 'version': '1.0'},
               'licenses': [], 'images': images, 'annotations': anns, 'categories': categories}
        with open(os.path.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(doc, f)
        counts[split] = len(images)
    return counts


def make_ade(out: str, seed: int = 0) -> Dict[str, int]:
    root = os.path.join(out, 'ade', 'ADEChallengeData2016')
    counts = {}
    for si, (split, n_img) in enumerate(ADE_SPLITS.items()):
        rng = np.random.default_rng([seed, 2, si])
        os.makedirs(os.path.join(root, 'images', split), exist_ok=True)
        os.makedirs(os.path.join(root, 'annotations', split), exist_ok=True)
        for i in range(n_img):
            h = int(rng.choice([96, 128]))
            w = int(rng.choice([128, 160]))
            img = Image.fromarray(_background(rng, h, w))
            label = np.full((h, w), ADE_BACKGROUND, dtype=np.uint8)
            for (x0, y0, s) in _place(rng, h, w, int(rng.integers(2, 5)), 20, 48):
                name, colour, kind = SHAPES[int(rng.integers(len(SHAPES)))]
                mask_img = Image.new('L', (w, h), 0)
                _draw(img, mask_img, kind, x0, y0, s, _jitter(rng, colour))
                label[np.array(mask_img, dtype=bool)] = ADE_SHAPE_LABELS[name]
            label[:2, :] = 0  # a thin unlabelled ("other") band, as in real ADE20K maps
            stem = f'ADE_{split[:5]}_{i + 1:08d}'
            img.save(os.path.join(root, 'images', split, stem + '.jpg'), quality=95)
            Image.fromarray(label, mode='L').save(os.path.join(root, 'annotations', split, stem + '.png'))
        counts[split] = n_img
    return counts


def make_imagenet(out: str, seed: int = 0, size: int = 64) -> Dict[str, int]:
    root = os.path.join(out, 'imagenet')
    os.makedirs(os.path.join(root, 'meta'), exist_ok=True)
    counts = {}
    for si, (split, per_class) in enumerate(IMAGENET_SPLITS.items()):
        rng = np.random.default_rng([seed, 3, si])
        lines = []
        for label, (wnid, kind, colour) in enumerate(IMAGENET_CLASSES):
            os.makedirs(os.path.join(root, split, wnid), exist_ok=True)
            for i in range(per_class):
                img = Image.fromarray(_background(rng, size, size))
                mask = Image.new('L', (size, size), 0)
                s = int(rng.integers(size // 3, size // 2 + 8))
                x0 = int(rng.integers(2, size - s - 2))
                y0 = int(rng.integers(2, size - s - 2))
                _draw(img, mask, kind, x0, y0, s, _jitter(rng, colour))
                fname = f'{wnid}_{split}_{i + 1:05d}.JPEG'
                img.save(os.path.join(root, split, wnid, fname), format='JPEG', quality=95)
                lines.append(f'{wnid}/{fname} {label}')
        with open(os.path.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        counts[split] = len(lines)
    with open(os.path.join(root, 'meta', 'classes.txt'), 'w') as f:
        f.write('\n'.join(w for w, _, _ in IMAGENET_CLASSES) + '\n')
    return counts


MAKERS = {'coco': make_coco, 'ade': make_ade, 'imagenet': make_imagenet}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/make_toy_data.py OUT_DIR [--task T] [--seed S]`` (console script
    ``attnzero-make-toy-data``)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('out_dir', help='output folder (e.g. data/toy)')
    p.add_argument('--task', choices=['coco', 'ade', 'imagenet', 'all'], default='all')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    tasks = list(MAKERS) if args.task == 'all' else [args.task]
    for t in tasks:
        counts = MAKERS[t](args.out_dir, seed=args.seed)
        print(f'[make_toy_data] {t}: ' + ', '.join(f'{k}={v}' for k, v in counts.items())
              + f' -> {os.path.abspath(args.out_dir)}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
