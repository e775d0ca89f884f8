"""End-of-run outputs: Pareto front (csv, png, printed), best genomes, summary with the
efficiency figure (compute spent vs a naive search on the same candidates).

The search selects on validation accuracy. Test accuracy is computed here, for the final Pareto
front only (:func:`add_test_scores`), from the test-set predictions recorded during training: this
is the one place where the search reads test labels.

A joint attention + shape search (``SearchConfig.space == 'joint'``) writes its front as whole
models instead of attention genomes: ``best_archs.json`` (each point's joint, shape and genome
texts, proxy accuracies, full-size parameters and MACs, and the ``timm.create_model`` line that
builds it), ``best_arch_mmconfig.py`` (the chosen point, highest proxy accuracy, as mmengine
config dicts) and ``pareto.png`` over accuracy x parameters; no ``best_genomes.json`` /
``best_genome.py`` (their readers take attention genomes for the paper's backbones).
"""
from __future__ import annotations

import csv
import io
import json
import math
import shlex
from typing import Any, Dict, List, Tuple

import numpy as np

from attnzero.io import atomic_savefig

from attnzero.space.shape import SHAPE_SPACES, JointGenome, ViTShape

from .config import SearchConfig
from .proxies import load_proxy
from .state import RunState, atomic_write_json, atomic_write_text

__all__ = ['write_outputs', 'pareto_records', 'efficiency', 'format_front', 'add_test_scores',
           'best_archs', 'acc_params_front']


def pareto_records(cfg: SearchConfig, state: RunState) -> List[Dict[str, Any]]:
    """Non-dominated first-hand feasible evaluations (one per function), best accuracy first."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting  # heavy: at the end only

    seen, recs = set(), []
    for r in sorted(state.records.values(), key=lambda r: r['idx']):
        if r['status'] != 'ok' or r.get('fec') in seen:
            continue
        seen.add(r.get('fec'))
        recs.append(r)
    if not recs:
        return []
    F = np.array([r['F'] for r in recs], dtype=float)
    front = NonDominatedSorting().do(F, only_non_dominated_front=True)
    out = [recs[i] for i in front]
    out.sort(key=lambda r: (-(r['acc_mean'] or 0.0), r['cost'] or 0.0, r['idx']))
    return out


def add_test_scores(cfg: SearchConfig, front: List[Dict[str, Any]]) -> None:
    """Set ``test_accs`` (per architecture) and ``test_acc_mean`` on each front record from its
    recorded test predictions (``None`` where a run recorded none, e.g. an older run)."""
    data = None
    for r in front:
        preds = {pa['arch']: pa.get('test_pred') for pa in r.get('per_arch', [])}
        if any(preds.get(a) is None for a in cfg.archs):
            r['test_accs'], r['test_acc_mean'] = {}, None
            continue
        if data is None:
            data = load_proxy(cfg.proxy)
        r['test_accs'] = {a: data.test_accuracy(preds[a]) for a in cfg.archs}
        r['test_acc_mean'] = sum(r['test_accs'].values()) / len(cfg.archs)


def _num(v: Any, fmt: str = '.4f') -> str:
    return 'n/a' if v is None else format(v, fmt)


def efficiency(cfg: SearchConfig, state: RunState) -> Dict[str, Any]:
    """Compute spent by this search vs a naive search (no checks, no rejection, no cache) that
    trains every proposed candidate in every architecture for the full budget.

    The naive per-architecture cost is measured: mean wall seconds (and GFLOPs) of the completed
    full-budget trainings of that architecture in this run (candidates and baselines).

    GFLOPs that could not be counted are recorded as ``None`` (:func:`.archs.model_flops_per_image`)
    and are never estimated: they are left out of the sums and means and counted in
    ``spent['gflops_unknown']`` / ``naive['gflops_unknown']``; ``speedup_gflops`` is NaN when any
    spent GFLOPs are unknown (the spent total would be too low)."""
    recs = list(state.records.values())
    unknown_full = 0
    full_s: Dict[str, List[float]] = {a: [] for a in cfg.archs}
    full_g: Dict[str, List[float]] = {a: [] for a in cfg.archs}
    full_n: Dict[str, List[int]] = {a: [] for a in cfg.archs}
    for r in recs:
        if r['status'] == 'ok':
            for pa in r.get('per_arch', []):
                if pa['status'] == 'ok' and pa['arch'] in full_s:
                    full_s[pa['arch']].append(pa['seconds'])
                    full_n[pa['arch']].append(pa['samples'])
                    if pa['gflops'] is None:
                        unknown_full += 1
                    else:
                        full_g[pa['arch']].append(pa['gflops'])
    for a, b in state.baselines.items():
        if a in full_s and b.get('status') == 'ok':
            full_s[a].append(b['seconds'])
            full_n[a].append(b['samples'])
            if b['gflops'] is None:
                unknown_full += 1
            else:
                full_g[a].append(b['gflops'])
    per_arch_s = {a: (sum(v) / len(v) if v else float('nan')) for a, v in full_s.items()}
    per_arch_g = {a: (sum(v) / len(v) if v else float('nan')) for a, v in full_g.items()}
    per_arch_n = {a: (max(v) if v else 0) for a, v in full_n.items()}
    n = len(recs)
    naive_s = n * sum(per_arch_s.values())
    naive_g = n * sum(per_arch_g.values())
    naive_n = n * sum(per_arch_n.values())
    spent_cand_s = sum(r.get('seconds', 0.0) + r.get('check_seconds', 0.0) for r in recs)
    spent_cand_g, unknown_cand = _sum_known(r.get('gflops', 0.0) for r in recs)
    spent_cand_n = sum(r.get('samples', 0) for r in recs)
    base_s = sum(b.get('seconds', 0.0) for b in state.baselines.values())
    base_g, unknown_base = _sum_known(b.get('gflops', 0.0) for b in state.baselines.values())
    base_n = sum(b.get('samples', 0) for b in state.baselines.values())
    spent_s, spent_g, spent_n = spent_cand_s + base_s, spent_cand_g + base_g, spent_cand_n + base_n

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 and math.isfinite(a) else float('nan')

    unknown_spent = unknown_cand + unknown_base
    return dict(
        candidates=n,
        naive=dict(seconds=naive_s, gflops=naive_g, train_samples=naive_n,
                   full_budget_seconds_per_arch=per_arch_s, full_budget_gflops_per_arch=per_arch_g,
                   gflops_unknown=unknown_full),
        spent=dict(seconds=spent_s, gflops=spent_g, train_samples=spent_n,
                   candidates_seconds=spent_cand_s, baseline_seconds=base_s,
                   gflops_unknown=unknown_spent),
        speedup_seconds=ratio(naive_s, spent_s),
        speedup_gflops=float('nan') if unknown_spent else ratio(naive_g, spent_g),
        speedup_samples=ratio(naive_n, spent_n),
    )


def _sum_known(values) -> Tuple[float, int]:
    """``(sum of the numbers, count of None)``."""
    total, unknown = 0.0, 0
    for v in values:
        if v is None:
            unknown += 1
        else:
            total += v
    return total, unknown


def _counts(state: RunState) -> Dict[str, Any]:
    """How the run's evaluations ended. ``trained``: went to proxy training (a candidate stopped at a
    lower successive-halving rung, stage ``rungN``, included; ``not_promoted`` counts those);
    ``deferred``: held back by the prior, the pre-screen or the surrogate, never trained; ``lost``: its worker died or timed out
    on every attempt."""
    reasons: Dict[str, int] = {}
    c = dict(evaluations=0, trained=0, ok=0, rejected=0, cached=0, rejected_at_check=0,
             rejected_in_training=0, deferred=0, not_promoted=0, lost=0)
    for r in state.records.values():
        c['evaluations'] += 1
        if r['status'] == 'cached':
            c['cached'] += 1
            continue
        stage = r['stage']
        at_rung = stage.startswith('rung')
        if stage in ('train', 'worker') or at_rung:
            c['trained'] += 1
        c['not_promoted'] += at_rung
        if r['status'] == 'ok':
            c['ok'] += 1
            continue
        c['rejected'] += 1
        reasons[r['reason']] = reasons.get(r['reason'], 0) + 1
        if stage == 'check':
            c['rejected_at_check'] += 1
        elif stage == 'train' or at_rung:
            c['rejected_in_training'] += 1
        elif stage in ('prior', 'prescreen', 'surrogate'):
            c['deferred'] += 1
        else:
            c['lost'] += 1
    c['reject_reasons'] = dict(sorted(reasons.items()))
    return c


def format_front(cfg: SearchConfig, front: List[Dict[str, Any]], baselines: Dict[str, Any]) -> str:
    """The Pareto front as a text table (rich when available)."""
    unit = 'MFLOPs@N=%d,d=%d' % (cfg.cost_tokens, cfg.cost_head_dim) if cfg.cost == 'flops' else 'ms'
    joint = cfg.space == 'joint'
    costs = ['params (M)', 'MACs (G)'] if joint else [f'cost ({unit})']
    cols = (['#', 'val_acc_mean'] + [f'val_acc_{a}' for a in cfg.archs] + ['test_acc_mean']
            + costs + (['shape|genome'] if joint else ['genome']))
    rows = []
    for i, r in enumerate(front):
        cost = [f'{r["cost"]:.4g}', _num(r.get('macs') and r['macs'] / 1e9, '.4g')] if joint else [f'{r["cost"]:.4g}']
        rows.append([str(i + 1), f'{r["acc_mean"]:.4f}'] + [f'{r["accs"].get(a, float("nan")):.4f}'
                                                             for a in cfg.archs]
                    + [_num(r.get('test_acc_mean'))] + cost + [r['genome']])
    base = ', '.join(f'{a}: {b["acc"]:.4f}' for a, b in baselines.items())
    try:
        from rich.console import Console
        from rich.table import Table

        what = 'models (full-size costs)' if joint else 'genomes'
        t = Table(title=f'Pareto front ({len(front)} {what}; baseline {cfg.baseline} {base})')
        for c in cols:
            t.add_column(c, overflow='fold')
        for row in rows:
            t.add_row(*row)
        buf = io.StringIO()
        Console(file=buf, width=160, force_terminal=False, color_system=None).print(t)
        return buf.getvalue()
    except Exception:  # noqa: BLE001
        lines = [f'Pareto front ({len(front)} genomes; baseline {cfg.baseline} {base})', '\t'.join(cols)]
        lines += ['\t'.join(row) for row in rows]
        return '\n'.join(lines) + '\n'


def _plot(cfg: SearchConfig, state: RunState, front: List[Dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ok = [r for r in state.records.values() if r['status'] == 'ok']
    joint = cfg.space == 'joint'
    if ok:
        ax.scatter([r['cost'] for r in ok], [r['acc_mean'] for r in ok], s=14, c='0.6',
                   label=f'evaluated ({len(ok)})')
    if front and joint:   # the 3-objective front, and its accuracy x parameters front joined
        ax.scatter([r['cost'] for r in front], [r['acc_mean'] for r in front], s=30, facecolors='none',
                   edgecolors='tab:red', label=f'Pareto front, acc x params x MACs ({len(front)})')
        fr = sorted(acc_params_front(front), key=lambda r: r['cost'])
        ax.step([r['cost'] for r in fr], [r['acc_mean'] for r in fr], 'o-', where='post', c='tab:red', ms=5,
                label=f'Pareto front, acc x params ({len(fr)})')
    elif front:
        fr = sorted(front, key=lambda r: r['cost'])
        ax.plot([r['cost'] for r in fr], [r['acc_mean'] for r in fr], 'o-', c='tab:red', ms=5,
                label=f'Pareto front ({len(front)})')
    if state.baselines:
        acc = sum(b['acc'] for b in state.baselines.values()) / len(state.baselines)
        ax.axhline(acc, ls='--', c='tab:blue', lw=1, label=f'{cfg.baseline} baseline')
    costs = [r['cost'] for r in ok if r.get('cost')]
    if costs and max(costs) / max(min(costs), 1e-12) > 20:
        ax.set_xscale('log')
    if joint:
        sp = SHAPE_SPACES[cfg.shape_space]
        ax.set_xlabel(f'parameters (M) at full size ({sp.img_size} px, {sp.num_classes} classes)')
    else:
        ax.set_xlabel(f'attention cost ({"MFLOPs at N=%d, d=%d" % (cfg.cost_tokens, cfg.cost_head_dim) if cfg.cost == "flops" else "ms"})')
    ax.set_ylabel('proxy validation accuracy (mean over ' + ', '.join(cfg.archs) + ')')
    ax.set_title(f'attnzero joint search ({cfg.shape_space} shapes)' if joint else 'attnzero search')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc='best')
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)


def write_outputs(cfg: SearchConfig, state: RunState) -> Dict[str, Any]:
    front = pareto_records(cfg, state)
    add_test_scores(cfg, front)
    # pareto.csv: validation accuracies (what the search selected on), then test (reported only)
    buf = io.StringIO()
    w = csv.writer(buf)
    joint = cfg.space == 'joint'
    w.writerow(['rank', 'idx', 'genome', 'hash', 'acc_mean'] + [f'acc_{a}' for a in cfg.archs]
               + ['test_acc_mean'] + [f'test_acc_{a}' for a in cfg.archs]
               + ['cost', 'cost_unit'] + (['params', 'macs'] if joint else []) + cfg.objective_names)
    unit = 'Mparams' if joint else 'MFLOPs' if cfg.cost == 'flops' else 'ms'
    for i, r in enumerate(front):
        w.writerow([i + 1, r['idx'], r['genome'], r['hash'], f'{r["acc_mean"]:.6f}']
                   + [f'{r["accs"].get(a, float("nan")):.6f}' for a in cfg.archs]
                   + [_num(r['test_acc_mean'], '.6f')] + [_num(r['test_accs'].get(a), '.6f') for a in cfg.archs]
                   + [f'{r["cost"]:.6g}', unit] + ([r['params'], f'{r["macs"]:.0f}'] if joint else [])
                   + [f'{v:.6g}' for v in r['F']])
    atomic_write_text(state.path('pareto.csv'), buf.getvalue())
    if joint:
        _write_joint_outputs(cfg, state, front)
    # best genomes, in the format the backbones and mmconfigs accept (attn='attnzero', genome=text)
    best = [] if joint else [dict(genome=r['genome'], attn='attnzero', acc_mean=r['acc_mean'], accs=r['accs'],
                 test_acc_mean=r['test_acc_mean'], test_accs=r['test_accs'],
                 cost=r['cost'], cost_unit=unit, idx=r['idx']) for r in front]
    if not joint:
        atomic_write_json(state.path('best_genomes.json'), best)
    if front and not joint:
        top = front[0]['genome']
        snippet = ('# Best genome of the attnzero search in this directory (highest proxy accuracy on\n'
                   '# the Pareto front). Use as an mmengine _base_ or copy the two keys into a backbone\n'
                   '# dict; timm: timm.create_model(name, attn="attnzero", genome=GENOME).\n'
                   f'GENOME = {top!r}\n'
                   "model = dict(backbone=dict(attn='attnzero', genome=GENOME))\n")
        atomic_write_text(state.path('best_genome.py'), snippet)
    atomic_write_json(state.path('final_population.json'), state.population)
    try:
        _plot(cfg, state, front, state.path('pareto.png'))
    except Exception as e:  # noqa: BLE001 - a plotting failure must not lose the other outputs
        atomic_write_text(state.path('pareto.png.error.txt'), f'{type(e).__name__}: {e}\n')
    summary = dict(run_dir=state.run_dir, generations=state.generation, done=state.done,
                   wall_seconds=state.wall_seconds, sessions=state.sessions, counts=_counts(state),
                   efficiency=efficiency(cfg, state),
                   baselines={a: dict(attn=b.get('attn'), acc=b['acc'], ckpt_acc=b.get('ckpt_acc'),
                                      seconds=b['seconds']) for a, b in state.baselines.items()},
                   pareto=[dict(genome=r['genome'], acc_mean=r['acc_mean'], accs=r['accs'],
                                test_acc_mean=r['test_acc_mean'], test_accs=r['test_accs'],
                                cost=r['cost'], **({k: r[k] for k in ('shape', 'params', 'macs')} if joint else {}))
                           for r in front],
                   objectives=cfg.objective_names)
    atomic_write_json(state.path('summary.json'), summary)
    return summary


def acc_params_front(front: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The records of a joint search's (3-objective) front that are non-dominated in accuracy x
    full-size parameters alone."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting  # heavy: at the end only

    if not front:
        return []
    F = np.array([[-r['acc_mean'], r['cost']] for r in front], dtype=float)
    return [front[i] for i in sorted(NonDominatedSorting().do(F, only_non_dominated_front=True))]


def _scaled(v: Any, unit: float) -> Any:
    return None if v is None else v / unit


def _create_model_line(shape: str, genome: str) -> str:
    return (f"import timm, attnzero.models; model = timm.create_model('attnzero_vit', arch={shape!r}, "
            f"attn='attnzero', genome={genome!r})")


def _export_line(shape: str, genome: str) -> str:
    return (f'python tools/export.py attnzero_vit --arch {shlex.quote(shape)} --attn attnzero '
            f'--genome {shlex.quote(genome)} --format onnx')


def best_archs(cfg: SearchConfig, front: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The entries of ``best_archs.json`` for a joint search's ``front`` (with test scores,
    :func:`add_test_scores`), in the front's order (highest proxy accuracy first)."""
    sp = SHAPE_SPACES[cfg.shape_space]
    on_2d = {r['idx'] for r in acc_params_front(front)}
    out = []
    for r in front:
        j = JointGenome.parse(r['genome'])
        shape, genome = j.shape.to_string(), j.attention.to_string()
        out.append(dict(idx=r['idx'], joint=r['genome'], hash=r['hash'], shape=shape, genome=genome,
                        attn='attnzero', val_acc=r['acc_mean'], val_accs=r['accs'],
                        test_acc=r['test_acc_mean'], test_accs=r['test_accs'],
                        params=r['params'], params_M=_scaled(r['params'], 1e6), macs=r['macs'],
                        macs_G=_scaled(r['macs'], 1e9),
                        full_size=dict(img_size=sp.img_size, patch_size=sp.patch_size, num_classes=sp.num_classes),
                        acc_params_front=r['idx'] in on_2d, python=_create_model_line(shape, genome),
                        export=_export_line(shape, genome)))
    return out


def _mmconfig_fragment(run_dir: str, arch: Dict[str, Any]) -> str:
    shape = arch['shape']
    width = ViTShape.parse(shape).embed_dim
    size = arch['full_size']
    return f'''# The chosen model of the joint attention + shape search in {run_dir}:
# the highest proxy validation accuracy of its Pareto front (evaluation {arch['idx']}, accuracy {arch['val_acc']:.4f});
# {_num(arch['params_M'], '.3f')} M parameters, {_num(arch['macs_G'], '.4f')} GMACs at {size['img_size']} px, {size['num_classes']} classes.
# Use it as a second _base_ of a real config and take its dicts:
#
#   ImageNet (mmpretrain's TimmClassifier around timm's attnzero_vit):
#       _base_ = ['<attnzero>/mmconfigs/_base_/in1k_8xb128-300e.py', '<this file>']
#       model = dict(model_name='attnzero_vit', **_base_.attnzero_vit)
#   Detection / segmentation (the DeiT trunk of this shape as a 4-level pyramid, AttnZeroDeiT):
#       _base_ = ['<attnzero>/mmconfigs/_base_/mask-rcnn_fpn_1x_coco.py', '<this file>']
#       model = dict(backbone=dict(_delete_=True, **_base_.attnzero_backbone),
#                    neck=dict(in_channels=_base_.attnzero_channels))
SHAPE = {shape!r}
GENOME = {arch['genome']!r}
attnzero_vit = dict(arch=SHAPE, attn='attnzero', genome=GENOME)
attnzero_backbone = dict(type='AttnZeroDeiT', arch=dict(shape=SHAPE), attn='attnzero', genome=GENOME)
attnzero_channels = {[width] * 4!r}
'''


def _write_joint_outputs(cfg: SearchConfig, state: RunState, front: List[Dict[str, Any]]) -> None:
    archs = best_archs(cfg, front)
    atomic_write_json(state.path('best_archs.json'), archs)
    if archs:
        atomic_write_text(state.path('best_arch_mmconfig.py'), _mmconfig_fragment(state.run_dir, archs[0]))


def _unknown_note(e: Dict[str, Any]) -> str:
    n = e['spent'].get('gflops_unknown', 0)
    return f': FLOPs of {n} evaluation(s) could not be counted' if n else ''


def format_summary(cfg: SearchConfig, summary: Dict[str, Any], front_text: str) -> str:
    c, e = summary['counts'], summary['efficiency']
    lines = [front_text.rstrip('\n'),
             f'evaluations: {c["evaluations"]} ({c["trained"]} trained, {c["ok"]} completed, '
             f'{c["rejected"]} rejected: {c["rejected_at_check"]} by the checks, '
             f'{c["rejected_in_training"]} by the rejection protocol, '
             + (f'{c["deferred"]} deferred (pre-screen / surrogate), ' if c.get('deferred') else '')
             + f'{c["lost"]} lost; {c["cached"]} from the cache'
             + (f'; {c["not_promoted"]} stopped at a lower rung' if c.get('not_promoted') else '') + ')',
             f'reject reasons: {json.dumps(c["reject_reasons"])}',
             f'compute: {e["spent"]["seconds"]:.1f} s spent (incl. {e["spent"]["baseline_seconds"]:.1f} s '
             f'baselines) vs {e["naive"]["seconds"]:.1f} s for a naive search of the same '
             f'{e["candidates"]} candidates -> {e["speedup_seconds"]:.2f}x '
             f'({e["speedup_gflops"]:.2f}x in GFLOPs{_unknown_note(e)}, {e["speedup_samples"]:.2f}x in '
             f'training images)',
             f'wall time: {summary["wall_seconds"]:.1f} s; outputs in {summary["run_dir"]}']
    return '\n'.join(lines) + '\n'
