"""Deployment of the attnzero models: ``torch.export`` (``.pt2``) and ONNX, each verified against
the eager model.

    from attnzero.models.export import export_model
    report = export_model(model, 'pt2', 'model.pt2', img_size=(224, 224), dynamic=True)
    report['max_abs_err']   # exported vs eager, at every checked input size

Both formats go through ``torch.export`` (ONNX: ``torch.onnx.export(..., dynamo=True)``); the
ONNX file is run with onnxruntime. ``dynamic=True`` exports with symbolic height and width
(multiples of :data:`SIZE_MULTIPLE`) and checks a second input size as well. TorchScript is not
supported (the models use Python control flow on shapes); ``torch.export`` is its successor.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import timm
import torch
from torch import nn
from torch.export import Dim
from torch.nn.attention import SDPBackend, sdpa_kernel

from attnzero.attention import ATTENTIONS
from attnzero.io import tool_command
from attnzero.space import genome_problem

from . import MODEL_NAMES
from .checkpoint import load_checkpoint_into

__all__ = ['FORMATS', 'SIZE_MULTIPLE', 'dynamic_hw', 'input_hw_range', 'second_size', 'build', 'main', 'export_pt2', 'export_onnx',
           'run_pt2', 'run_onnx', 'export_model']

FORMATS = ('pt2', 'onnx')
#: dynamic height/width are exported as multiples of this (the coarsest stride of every family)
SIZE_MULTIPLE = 32


def dynamic_hw(img_size: Tuple[int, int], min_size: int = 64, max_size: int = 2048
               ) -> Dict[str, Dict[int, Any]]:
    """``dynamic_shapes`` for ``forward(x)``: symbolic height and width, multiples of 32."""
    lo, hi = max(1, min_size // SIZE_MULTIPLE), max_size // SIZE_MULTIPLE
    h, w = Dim('h32', min=lo, max=hi), Dim('w32', min=lo, max=hi)
    return {'x': {2: SIZE_MULTIPLE * h, 3: SIZE_MULTIPLE * w}}


def input_hw_range(ep) -> Optional[List[Tuple[int, int]]]:
    """``[(min, max) height, (min, max) width]`` in pixels that an exported program accepts (the
    guards ``torch.export`` recorded: e.g. Swin's shifted windows in the last stage exist only
    above 7x32 px, so an export at 224 is valid up to 224); ``None`` for static shapes."""
    x = [n for n in ep.graph.nodes if n.op == 'placeholder'][-1].meta['val']
    out = []
    for d in x.shape[-2:]:
        if isinstance(d, int):
            return None
        expr = d.node.expr
        sym = next(iter(expr.free_symbols))
        vr = ep.range_constraints[sym]
        lo = int(expr.subs(sym, int(vr.lower)))
        hi = int(expr.subs(sym, int(vr.upper))) if vr.upper.is_finite else 10 ** 9
        out.append((lo, hi))
    return out


def second_size(img_size: Tuple[int, int], ranges: Optional[Sequence[Tuple[int, int]]] = None
                ) -> Tuple[int, int]:
    """Another input size to check a dynamic export at: non-square, multiples of 32, inside the
    exported program's valid range."""
    out = []
    for s, k_first, (lo, hi) in zip(img_size, (1, 3), ranges or [(0, 10 ** 9)] * 2):
        cands = [s + SIZE_MULTIPLE * k for k in (k_first, 2, 1, -1, -2, -3)]
        out.append(next((c for c in cands if lo <= c <= hi and c != s and c > 0), s))
    return out[0], out[1]


@contextlib.contextmanager
def _math_sdpa():
    """Trace softmax attention through its math form: the ONNX decompositions re-derive strides
    from the math form, which the fused CPU kernel's output layout does not match."""
    with sdpa_kernel(SDPBackend.MATH):
        yield


def export_pt2(model: nn.Module, x: torch.Tensor, path: Optional[str] = None,
               dynamic: bool = False, min_size: int = 64, max_size: int = 2048):
    """``torch.export.export`` of ``model`` (in eval mode) on ``x``; saved to ``path`` if given."""
    model.eval()
    shapes = dynamic_hw(tuple(x.shape[-2:]), min_size, max_size) if dynamic else None
    with torch.no_grad():
        ep = torch.export.export(model, (x,), dynamic_shapes=shapes)
    if path:
        torch.export.save(ep, path)
    return ep


def export_onnx(model: nn.Module, x: torch.Tensor, path: str, dynamic: bool = False,
                min_size: int = 64, max_size: int = 2048, opset: Optional[int] = None) -> str:
    """``torch.onnx.export(..., dynamo=True)`` of ``model`` on ``x`` to ``path``."""
    model.eval()
    shapes = dynamic_hw(tuple(x.shape[-2:]), min_size, max_size) if dynamic else None
    kw = {} if opset is None else dict(opset_version=opset)
    with torch.no_grad(), _math_sdpa():
        prog = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=shapes,
                                 input_names=['x'], output_names=['out'], verbose=False, **kw)
    prog.save(path)
    return prog


def _first(out: Any) -> List[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    return [o for o in out]


def run_pt2(path: str, x: torch.Tensor) -> List[torch.Tensor]:
    ep = torch.export.load(path)
    with torch.no_grad():
        return _first(ep.module()(x))


def run_onnx(path: str, x: torch.Tensor) -> List[torch.Tensor]:
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    outs = sess.run(None, {sess.get_inputs()[0].name: x.detach().cpu().numpy()})
    return [torch.from_numpy(o) for o in outs]


def export_model(model: nn.Module, fmt: str, path: str, img_size: Sequence[int] = (224, 224),
                 dynamic: bool = False, batch: int = 1, check_sizes: Optional[Sequence] = None,
                 seed: int = 0) -> Dict[str, Any]:
    """Export ``model`` to ``path`` (``fmt`` ``'pt2'`` or ``'onnx'``), reload it, and compare its
    outputs with the eager model's on random inputs at ``img_size`` (and, when ``dynamic``, at
    :func:`second_size` too). Returns a report with the maximum absolute and relative errors."""
    if fmt not in FORMATS:
        raise ValueError(f'unknown format {fmt!r}; expected one of {FORMATS}')
    img_size = (int(img_size[0]), int(img_size[-1]))
    if dynamic and any(s % SIZE_MULTIPLE for s in img_size):
        raise ValueError(f'--img-size {img_size} must be a multiple of {SIZE_MULTIPLE} with dynamic shapes')
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, *img_size, generator=gen)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if fmt == 'pt2':
        ep = export_pt2(model, x, path, dynamic=dynamic)
        run = run_pt2
    else:
        ep = export_onnx(model, x, path, dynamic=dynamic).exported_program
        run = run_onnx
    ranges = input_hw_range(ep) if dynamic else None
    guard_note = ''
    if check_sizes:
        sizes = list(check_sizes)
    else:
        sizes = [img_size]
        if dynamic:  # a second size the program's guards accept (windowed stages may need
            # multiples of their window: e.g. CSwin's 7-token stripes at stride 16 -> 112 px)
            cands = [second_size(img_size, ranges),
                     (img_size[0] - SIZE_MULTIPLE, img_size[1] - 2 * SIZE_MULTIPLE),
                     (2 * img_size[0], 2 * img_size[1])]
            cands = [hw for hw in cands if min(hw) > 0]
            for hw in cands:
                try:
                    with torch.no_grad():
                        ep.module()(torch.zeros(1, 3, *hw))
                except (AssertionError, RuntimeError) as e:
                    guard_note += f'{hw[0]}x{hw[1]} rejected by the guards ({str(e).splitlines()[0][:120]}); '
                    continue
                sizes.append(hw)
                break
    checks = []
    for hw in sizes:
        xi = torch.randn(batch, 3, *hw, generator=gen)
        with torch.no_grad():
            want = _first(model(xi))
        got = run(path, xi)
        if len(got) != len(want):
            raise RuntimeError(f'{fmt}: {len(got)} outputs, eager has {len(want)}')
        err = max(float((g.to(w.dtype) - w).abs().max()) for g, w in zip(got, want))
        scale = max(float(w.abs().max()) for w in want)
        checks.append(dict(size=list(hw), max_abs_err=err, max_rel_err=err / max(scale, 1e-12),
                           shapes=[list(w.shape) for w in want]))
    return dict(format=fmt, path=path, bytes=os.path.getsize(path), dynamic=dynamic,
                img_size=list(img_size), valid_hw_range=ranges, guard_note=guard_note.strip('; '),
                checks=checks,
                max_abs_err=max(c['max_abs_err'] for c in checks),
                max_rel_err=max(c['max_rel_err'] for c in checks))


def build(model_name: str, attn: Optional[Sequence[str]] = None, genome: Optional[str] = None,
          num_classes: Optional[int] = None, features_only: bool = False,
          checkpoint: Optional[str] = None, arch: Optional[str] = None) -> nn.Module:
    """The timm model ``model_name`` with the given attention / genome (and weights); ``arch``:
    the shape of ``attnzero_vit`` (a name such as ``'autoformer_t'`` or a shape text such as a
    joint search's ``'e48:hd24:h2,2,1,2:r2,2,2,2'``)."""
    kw: Dict[str, Any] = {}
    if arch is not None:
        kw['arch'] = arch
    if attn:
        kw['attn'] = attn[0] if len(attn) == 1 else tuple(attn)
    if genome is not None:
        kw['genome'] = genome
    if num_classes is not None:
        kw['num_classes'] = num_classes
    if features_only:
        kw['features_only'] = True
    model = timm.create_model(model_name, **kw)
    if checkpoint:
        load_checkpoint_into(model, checkpoint)
    return model.eval()


def export_table(models: Sequence[str], formats: Sequence[str], out_prefix: str, out_dir: str,
                 img_size: Tuple[int, int] = (224, 224), dynamic: bool = True,
                 attn: Optional[Sequence[str]] = None, command: str = '') -> List[Dict[str, Any]]:
    """Export every model in every format (its default attention unless ``attn``), verify each,
    and write ``out_prefix``.md / .csv; returns the rows."""
    rows = []
    for name in models:
        for fmt in formats:
            path = os.path.join(out_dir, f'{name}.{fmt}')
            t0 = time.perf_counter()
            try:
                r = export_model(build(name, attn), fmt, path, img_size, dynamic=dynamic)
                row = dict(model=name, format=fmt, ok=True, seconds=round(time.perf_counter() - t0, 1),
                           mib=round(r['bytes'] / 2 ** 20, 1),
                           valid_hw=('' if not r['valid_hw_range'] else
                                     '{}..{} x {}..{}'.format(*r['valid_hw_range'][0], *r['valid_hw_range'][1])),
                           checked='; '.join(f"{c['size'][0]}x{c['size'][1]}" for c in r['checks']),
                           max_abs_err=r['max_abs_err'], error=r['guard_note'])
            except Exception as e:  # reported in the table, not hidden
                row = dict(model=name, format=fmt, ok=False, seconds=round(time.perf_counter() - t0, 1),
                           mib='', valid_hw='', checked='', max_abs_err='',
                           error=f'{type(e).__name__}: {str(e).splitlines()[0][:160]}')
            finally:
                if os.path.exists(path):
                    os.remove(path)  # the table is the product; the files are large
            print(json.dumps(row), flush=True)
            rows.append(row)
    write_export_table(rows, out_prefix, img_size, dynamic, command)
    return rows


def write_export_table(rows: List[Dict[str, Any]], out_prefix: str, img_size: Tuple[int, int],
                       dynamic: bool, command: str) -> None:
    os.makedirs(os.path.dirname(out_prefix) or '.', exist_ok=True)
    with open(out_prefix + '.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = ['# Export of every attnzero model: torch.export (.pt2) and ONNX (onnxruntime)', '',
             'Produced by:', '', '```bash', command, '```', '',
             f'Each model with its default (AttnZero) attention, random weights, eval mode, exported '
             f'at {img_size[0]}x{img_size[1]} with {"dynamic" if dynamic else "static"} height and '
             'width, reloaded (`torch.export.load` / an onnxruntime CPU session) and compared with '
             'eager on random inputs at the export size and at a second size inside the valid '
             f'range. torch {torch.__version__}.', '',
             '"valid input" is the range `torch.export` proved per dimension; windowed stages can '
             'add divisibility guards (the note column names the sizes they rejected, and the '
             'second checked size is the first candidate they accepted).', '',
             '| model | format | ok | valid input H..H x W..W | checked sizes | max abs err vs eager '
             '| file MiB | seconds | error / note |', '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        err = f"{float(r['max_abs_err']):.1e}" if r['ok'] else ''
        lines.append(f"| {r['model']} | {r['format']} | {'yes' if r['ok'] else '**no**'} | "
                     f"{r['valid_hw']} | {r['checked']} | {err} | {r['mib']} | {r['seconds']} | "
                     f"{r['error']} |")
    with open(out_prefix + '.md', 'w') as f:
        f.write('\n'.join(lines) + '\n')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/export.py``: export one model and verify it; exit 1 when the error exceeds ``--tol``,
    2 on bad input (one line naming it)."""
    p = argparse.ArgumentParser(prog='tools/export.py',
                                description='Export an attnzero model (torch.export .pt2 or ONNX) '
                                'and verify it against eager.')
    p.add_argument('model', help=f'timm name ({", ".join(MODEL_NAMES)}), or "all" for the table '
                   'of every model in both formats (--out is then the table prefix)')
    p.add_argument('--attn', nargs='+', help='attention for all stages, or one per stage')
    p.add_argument('--genome', help='AttnZero genome text (default: the family default)')
    p.add_argument('--arch', help="shape of attnzero_vit: a named arch (deit_t, autoformer_t, ...) or a "
                   "shape text, e.g. a joint search's best_archs.json 'shape'")
    p.add_argument('--format', choices=FORMATS, default='pt2')
    p.add_argument('--img-size', type=int, nargs='+', default=[224], metavar='S',
                   help='H [W] of the example input (default 224)')
    p.add_argument('--dynamic', action='store_true',
                   help=f'symbolic height/width (multiples of {SIZE_MULTIPLE}); also checked at a second size')
    p.add_argument('--num-classes', type=int, default=None)
    p.add_argument('--features-only', action='store_true', help='export the dense pyramid')
    p.add_argument('--checkpoint', help='weights to load first (timm / attnzero checkpoint)')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--tol', type=float, default=1e-4, help='max abs error allowed (default 1e-4)')
    p.add_argument('--out', help='output file (default: exports/MODEL[-ATTN].pt2|onnx)')
    p.add_argument('--json', help='write the report here too')
    args = p.parse_args(argv)

    def fail(msg: str) -> int:
        print(f'{p.prog}: error: {msg}', file=sys.stderr)
        return 2

    if args.model == 'all':
        prefix = args.out or os.path.join('docs', 'deploy', 'export_cpu')
        cmd = tool_command('export', argv)
        rows = export_table(MODEL_NAMES, FORMATS, prefix, os.path.join('exports', 'table'),
                            (args.img_size[0], args.img_size[-1]), dynamic=args.dynamic,
                            attn=args.attn, command=cmd)
        bad = [r for r in rows if not r['ok'] or r['max_abs_err'] > args.tol]
        print(f'[export] {len(rows) - len(bad)}/{len(rows)} exports within --tol {args.tol}; '
              f'table: {prefix}.md')
        return 1 if bad else 0
    if not timm.is_model(args.model) or not args.model.startswith('attnzero_'):
        return fail(f'unknown model {args.model!r}; known: {", ".join(MODEL_NAMES)}')
    if len(args.img_size) > 2 or any(s <= 0 for s in args.img_size):
        return fail(f'--img-size {args.img_size}: give H or H W (positive)')
    if args.arch is not None and args.model != 'attnzero_vit':
        return fail(f'--arch {args.arch!r}: only attnzero_vit takes a shape (got model {args.model!r})')
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        return fail(f'checkpoint {args.checkpoint!r} does not exist')
    problem = genome_problem(args.genome) if args.genome is not None else None
    if problem is not None:
        return fail(f'bad genome {args.genome!r}: {problem}')
    if args.attn:
        bad = [a for a in args.attn if a not in ATTENTIONS]
        if bad:
            return fail(f'unknown attention {bad[0]!r}; known: {", ".join(sorted(ATTENTIONS))}')
    hw = (args.img_size[0], args.img_size[-1])
    try:
        model = build(args.model, args.attn, args.genome, args.num_classes, args.features_only,
                      args.checkpoint, args.arch)
    except (ValueError, KeyError) as e:
        return fail(f'cannot build {args.model!r}: {e}')
    tag = '' if not args.attn else '-' + '-'.join(args.attn)
    out = args.out or os.path.join('exports', f'{args.model}{tag}.{args.format}')
    try:
        report = export_model(model, args.format, out, hw, dynamic=args.dynamic, batch=args.batch)
    except ValueError as e:
        return fail(str(e))
    report.update(model=args.model, attn=args.attn, genome=args.genome, arch=args.arch, tol=args.tol)
    if report['valid_hw_range']:
        (h0, h1), (w0, w1) = report['valid_hw_range']
        print(f'[export] dynamic input: height {h0}..{h1}, width {w0}..{w1} (multiples of '
              f'{SIZE_MULTIPLE}; the guards torch.export recorded)')
    if report['guard_note']:
        print(f"[export] note: {report['guard_note']}")
    for c in report['checks']:
        print(f"[export] {args.model} {args.format} {c['size'][0]}x{c['size'][1]}: max abs err "
              f"{c['max_abs_err']:.3e} (rel {c['max_rel_err']:.2e}) vs eager")
    print(f"[export] wrote {out} ({report['bytes'] / 2 ** 20:.1f} MiB)")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
    if report['max_abs_err'] > args.tol:
        print(f"{p.prog}: error: max abs error {report['max_abs_err']:.3e} > --tol {args.tol}",
              file=sys.stderr)
        return 1
    return 0
