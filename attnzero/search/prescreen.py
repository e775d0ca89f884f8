"""Training-free pre-screen scores of a candidate attention (issue 17, first part), and the study
of how well each ranks candidates the way the trained proxy does.

    python tools/zero_cost.py --fidelity docs/fidelity/default --out docs/efficiency/zero_cost/default
    python tools/zero_cost.py --bench v1 --out docs/efficiency/zero_cost/bench-v1

Every score is computed on the proxy architecture *at initialisation* (seeded as the search seeds
its training), on one batch of the proxy's training images:

* ``grad_norm`` -- L2 norm of the gradient of the cross-entropy over all parameters;
* ``snip`` -- ``sum |theta * dL/dtheta|`` (SNIP saliency, Lee et al. 2019);
* ``synflow`` -- ``sum theta * dR/dtheta`` with every parameter made positive and ``R`` the sum of
  the network's outputs on an all-ones input, in float64 (Tanaka et al. 2020; data-free);
* ``naswot`` -- log-determinant of the kernel of binary activation codes (signs of the MLP hidden
  pre-activations of every block) over the batch (Mellor et al. 2021): how differently the
  untrained network treats different images;
* ``attn_rank`` -- mean effective rank (exp of the entropy of the normalised singular values) of
  the attention outputs ``(N x d)`` per image, head and layer: how much token mixing at init keeps
  the tokens apart;
* ``early_loss`` -- not training-free, as a reference point: the drop of the training loss over the
  first ``early_steps`` steps of the search's own optimiser (:func:`~attnzero.search.train.proxy_optimizer`,
  at the constant peak learning rate: no warm-up or schedule over so few steps; a few seconds).

A candidate whose forward fails, or whose score is not finite, gets ``nan`` (ranked last).
:func:`study` correlates each score (mean of its per-architecture ranks) with the trained proxy
scores the fidelity tool recorded (``stability.csv``: sampled genomes at 1x and 4x the budget;
``fidelity.csv``: the zoo references), and writes md / csv / png; :func:`correlate` does it for any
rows (Attn-Bench-101's: :func:`attnzero.bench.analyze.zero_cost_rows`). The command line is
:func:`attnzero.bench.cli.zero_cost_main`.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from attnzero.attention import Attention
from attnzero.io import append_line, atomic_savefig, atomic_write_text, read_jsonl

from .config import PRESCREEN_SCORES, SearchConfig
from .evaluate import _load, candidate_parts, candidate_seed
from .fidelity import REFERENCES
from .proxies import ProxyData, load_proxy
from .archs import model_flops_per_image
from .train import deterministic_torch, init_proxy_model, proxy_optimizer

__all__ = ['SCORES', 'zero_cost_scores', 'prescreen_task', 'fidelity_rows', 'study', 'correlate']

SCORES = PRESCREEN_SCORES
#: steps of ``early_loss`` (the study's and the search's)
EARLY_STEPS = 16
#: images of the batch the training-free scores are computed on
BATCH = 64


def _grad_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Tuple[float, float]:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    sq, snip = 0.0, 0.0
    for p in model.parameters():
        if p.grad is not None:
            sq += float(p.grad.double().square().sum())
            snip += float((p.detach() * p.grad).abs().double().sum())
    return math.sqrt(sq), snip


def _synflow(model: nn.Module, shape: Sequence[int]) -> float:
    m = model.double()
    with torch.no_grad():
        for p in m.parameters():
            p.abs_()
    m.zero_grad(set_to_none=True)
    m(torch.ones(1, *shape[1:], dtype=torch.float64)).sum().backward()
    total = sum(float((p.detach() * p.grad).double().sum()) for p in m.parameters() if p.grad is not None)
    return total


def _naswot_and_rank(model: nn.Module, x: torch.Tensor) -> Tuple[float, float]:
    codes: List[torch.Tensor] = []
    ranks: List[float] = []

    def fc1_hook(mod, inp, out):
        codes.append((out.detach() > 0).flatten(1).float())

    def attn_hook(mod, inp, out):
        t = out.detach().float()                                  # (B, N, C) after the projection
        s = torch.linalg.svdvals(t)                               # (B, min(N, C))
        p = s / s.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        ent = -(p * p.clamp_min(1e-12).log()).sum(dim=-1)
        ranks.append(float(ent.exp().mean()))

    handles = []
    for name, mod in model.named_modules():
        if name.endswith('fc1') and isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(fc1_hook))
        if isinstance(mod, Attention):
            handles.append(mod.register_forward_hook(attn_hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    c = torch.cat(codes, dim=1).double()
    k = c @ c.T + (1 - c) @ (1 - c).T
    sign, logdet = torch.linalg.slogdet(k)
    return (float(logdet) if float(sign) > 0 else float('nan')), (float(np.mean(ranks)) if ranks else float('nan'))


def _early_loss(model: nn.Module, data: ProxyData, cfg: SearchConfig, seed: int, steps: int) -> float:
    opt = proxy_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(data.train_x), (cfg.batch_size,), generator=gen)
        loss = F.cross_entropy(model(data.train_x[idx]), data.train_y[idx])
        losses.append(float(loss.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
    k = max(1, steps // 4)
    return float(np.mean(losses[:k]) - np.mean(losses[-k:]))


def zero_cost_scores(arch: str, attn: str, genome: Optional[str], data: ProxyData, cfg: SearchConfig,
                     seed: int = 0, batch: int = BATCH, early_steps: int = EARLY_STEPS,
                     which: Sequence[str] = SCORES, shape: Optional[str] = None) -> Dict[str, float]:
    """The :data:`SCORES` of one candidate in one proxy architecture (``nan`` where it fails) and
    ``seconds`` (the training-free ones together, and ``early_loss_seconds``); ``which`` limits
    the work to the scores named (the others are left out). ``shape``: the ViT shape of a
    joint-search candidate (:func:`~attnzero.search.train.init_proxy_model`)."""
    out: Dict[str, float] = {}
    groups = {'grad': ('grad_norm', 'snip'), 'codes': ('naswot', 'attn_rank'), 'synflow': ('synflow',)}
    with deterministic_torch(cfg.threads):
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(data.train_x), generator=g)[:batch]
        x, y = data.train_x[idx], data.train_y[idx]
        for name, fn in (('grad', lambda m: _grad_scores(m, x, y)), ('codes', lambda m: _naswot_and_rank(m, x)),
                         ('synflow', lambda m: _synflow(m, x.shape))):
            if not set(groups[name]) & set(which):
                continue
            try:
                model = init_proxy_model(arch, attn, genome, data, cfg, seed, shape)
                model.train()
                r = fn(model)
            except Exception:  # noqa: BLE001 - a failing candidate scores nan
                r = (float('nan'), float('nan')) if name != 'synflow' else float('nan')
            if name == 'grad':
                out['grad_norm'], out['snip'] = r
            elif name == 'codes':
                out['naswot'], out['attn_rank'] = r
            else:
                out['synflow'] = r
        out['seconds'] = time.perf_counter() - t0
        if 'early_loss' in which:
            t1 = time.perf_counter()
            try:
                out['early_loss'] = _early_loss(init_proxy_model(arch, attn, genome, data, cfg, seed, shape), data, cfg,
                                                seed, early_steps)
            except Exception:  # noqa: BLE001
                out['early_loss'] = float('nan')
            out['early_loss_seconds'] = time.perf_counter() - t1
    return {k: (v if isinstance(v, float) and math.isfinite(v) else float('nan')) for k, v in out.items()}


def prescreen_task(payload: Dict[str, Any]) -> Dict[str, Any]:
    """Worker entry point of the search's pre-screen (``SearchConfig.prescreen``): the score of
    ``payload['genome']`` in every proxy architecture, seeded as its training would be.

    Returns ``scores`` (``{arch: score}``, ``nan`` where it fails), ``seconds``, ``cpu_seconds``
    and ``gflops`` (the forward/backward passes, 3 x forward per image of a backward pass: one
    batch of :data:`BATCH` images for a training-free score, :data:`EARLY_STEPS` batches of the
    proxy's batch size for ``early_loss``; ``None`` where the FLOPs are unknown)."""
    t0, c0 = time.perf_counter(), time.process_time()
    cfg, data = _load(payload['config'])
    name = cfg.prescreen
    scores: Dict[str, float] = {}
    gflops: Optional[float] = 0.0
    shape, genome = candidate_parts(cfg, payload['genome'])
    for arch in cfg.archs:
        seed = candidate_seed(cfg, payload['hash'], arch)
        scores[arch] = zero_cost_scores(arch, 'attnzero', genome, data, cfg, seed, which=(name,), shape=shape)[name]
        try:
            fpi = model_flops_per_image(init_proxy_model(arch, 'attnzero', genome, data, cfg, seed, shape),
                                        data.img_size)
        except Exception:  # noqa: BLE001 - a candidate that cannot be built has no FLOP count
            fpi = None
        images = EARLY_STEPS * cfg.batch_size if name == 'early_loss' else BATCH
        gflops = None if gflops is None or fpi is None else gflops + 3 * images * fpi / 1e9
    return dict(scores=scores, seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
                gflops=gflops)


# ------------------------------------------------------------------------------------ the study
def _ranks(values: Sequence[float]) -> np.ndarray:
    """Average ranks, ``nan`` last (lowest)."""
    v = np.array([(-np.inf if not math.isfinite(x) else x) for x in values], dtype=float)
    from scipy.stats import rankdata
    return rankdata(v)


def _read_csv(path: str) -> List[Dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def fidelity_rows(fidelity_dir: str, limit: Optional[int] = None) -> Tuple[List[Dict[str, Any]], SearchConfig]:
    """The rows of a fidelity run to score (its sampled genomes, trained at 1x and 4x the budget,
    and the zoo references, trained at 1x) and its search configuration."""
    settings = json.load(open(os.path.join(fidelity_dir, 'settings.json')))
    cfg = SearchConfig(**{k: v for k, v in settings['config'].items() if k in SearchConfig.__dataclass_fields__})
    rows: List[Dict[str, Any]] = []
    for r in _read_csv(os.path.join(fidelity_dir, 'stability.csv'))[:limit]:
        rows.append(dict(kind='sample', name=r['genome'], attn='attnzero', genome=r['genome'],
                         trained_1x=float(r['score_1x']), trained_4x=float(r['score_4x']),
                         trained_seconds=float(r['seconds_1x'])))
    fid = _read_csv(os.path.join(fidelity_dir, 'fidelity.csv'))
    for name, (attn, genome) in REFERENCES.items():
        objective = [float(r['mean']) for r in fid if r['attention'] == name and r['score'] == 'objective']
        if objective:
            rows.append(dict(kind='reference', name=name, attn=attn, genome=genome,
                             trained_1x=objective[0], trained_4x=float('nan')))
    return rows, cfg


def study(fidelity_dir: str, out: str, archs: Optional[Sequence[str]] = None, seed: int = 0,
          batch: int = 64, early_steps: int = 16, limit: Optional[int] = None) -> Dict[str, Any]:
    """Zero-cost scores of the fidelity run's sampled genomes and references, correlated with
    their trained scores; writes ``zero_cost.{md,csv,png}`` and ``scores.jsonl`` to ``out``.
    ``archs``: the proxy architectures to score in (default: those of the fidelity run)."""
    rows, cfg = fidelity_rows(fidelity_dir, limit)
    source = (f'the search configuration of `{fidelity_dir}/settings.json`; '
              f'{sum(r["kind"] == "sample" for r in rows)} sampled genomes (trained at 1x and 4x the budget by '
              f'the fidelity tool) and {sum(r["kind"] == "reference" for r in rows)} zoo references (trained at '
              '1x, 3 seeds)')
    command = f'python tools/zero_cost.py --fidelity {fidelity_dir} --out {out}'
    return correlate(rows, cfg, out, source, command, archs, seed, batch, early_steps)


def correlate(rows: List[Dict[str, Any]], cfg: SearchConfig, out: str, source: str, command: str,
              archs: Optional[Sequence[str]] = None, seed: int = 0, batch: int = 64,
              early_steps: int = 16) -> Dict[str, Any]:
    """Score ``rows`` (dicts with ``kind`` -- ``sample`` / ``reference`` --, ``name``, ``attn``,
    ``genome``, ``trained_1x``, ``trained_4x`` (``nan`` if unknown), optionally
    ``trained_seconds``) in the architectures ``archs`` of ``cfg`` (default all) on ``cfg``'s
    proxy, correlate each score with the trained scores and write ``zero_cost.{md,csv,png}``;
    the scores are cached in ``out/scores.jsonl`` (a re-run scores nothing twice). ``source``
    says in the report where the rows come from; ``command`` produced it."""
    from scipy.stats import kendalltau, spearmanr

    archs = tuple(archs) if archs else tuple(cfg.archs)
    unknown = [a for a in archs if a not in cfg.archs]
    if unknown:
        raise ValueError(f'--archs {",".join(archs)!r}: {unknown[0]!r} is not an architecture of the '
                         f'configuration ({",".join(cfg.archs)})')
    if tuple(archs) != tuple(cfg.archs):
        command += f' --archs {",".join(archs)}'
    data = load_proxy(cfg.proxy)
    os.makedirs(out, exist_ok=True)
    cache_path = os.path.join(out, 'scores.jsonl')
    cache: Dict[str, Dict[str, Any]] = {}
    for rec in read_jsonl(cache_path, repair=True)[0]:  # a torn last line is scored again
        cache[rec['key']] = rec
    for row in rows:
        for arch in archs:
            key = f'{row["kind"]}|{row["name"]}|{arch}|{seed}|{batch}|{early_steps}'
            if key not in cache:
                sc = zero_cost_scores(arch, row['attn'], row['genome'], data, cfg, seed, batch, early_steps)
                cache[key] = dict(key=key, **sc)
                append_line(cache_path, json.dumps(cache[key]))
            row[arch] = cache[key]
    # each score: the mean over architectures of its per-architecture rank
    table = []
    for s in SCORES:
        per_arch = np.stack([_ranks([row[a][s] for row in rows]) for a in archs])
        combined = per_arch.mean(axis=0)
        for row, v in zip(rows, combined):
            row.setdefault('rank', {})[s] = float(v)
        entry = dict(score=s)
        for target, subset in (('trained_1x', rows),
                               ('trained_4x', [r for r in rows if r['kind'] == 'sample'
                                               and math.isfinite(r['trained_4x'])]),
                               ('references_1x', [r for r in rows if r['kind'] == 'reference'])):
            col = 'trained_4x' if target == 'trained_4x' else 'trained_1x'
            xs = [r['rank'][s] for r in subset]
            ys = [r[col] for r in subset]
            kt = kendalltau(xs, ys) if len(subset) > 2 else None
            tau, p = (kt.statistic, kt.pvalue) if kt is not None else (float('nan'), float('nan'))
            rho = spearmanr(xs, ys).statistic if len(subset) > 2 else float('nan')
            entry[f'tau_{target}'], entry[f'rho_{target}'], entry[f'n_{target}'] = float(tau), float(rho), len(subset)
            entry[f'p_{target}'] = float(p)
        entry['nan'] = int(sum(1 for row in rows if any(not math.isfinite(row[a][s]) for a in archs)))
        secs = 'early_loss_seconds' if s == 'early_loss' else 'seconds'
        entry['seconds'] = float(np.mean([row[a][secs] for row in rows for a in archs]))
        table.append(entry)
    _write(out, command, source, rows, table, archs, cfg, batch, early_steps, seed)
    return dict(rows=rows, table=table)


def _write(out: str, cmd: str, source: str, rows, table, archs, cfg, batch, early_steps, seed) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(['kind', 'name', 'trained_1x', 'trained_4x'] + [f'{s}_{a}' for s in SCORES for a in archs])
    for r in rows:
        w.writerow([r['kind'], r['name'], f'{r["trained_1x"]:.4f}', f'{r["trained_4x"]:.4f}']
                   + [f'{r[a][s]:.6g}' for s in SCORES for a in archs])
    atomic_write_text(os.path.join(out, 'zero_cost.csv'), buf.getvalue())
    md = ['# Zero-cost pre-screen scores against the trained proxy', '', 'Produced by:', '', '```bash', cmd, '```', '',
          f'Proxy `{cfg.proxy}`, architectures {", ".join(archs)} ({source}). Each score on one batch '
          f'of {batch} training images at initialisation (seed {seed}); `early_loss` after {early_steps} '
          'training steps. A score is the mean over the architectures of its per-architecture rank '
          '(failures ranked last). Kendall tau-b / Spearman rho against the trained scores:', '',
          '| score | tau vs 1x (all) | p | rho vs 1x (all) | tau vs 4x (samples) | p | rho vs 4x (samples) | tau vs 1x (references) | failures | s per arch |',
          '|---|---|---|---|---|---|---|---|---|---|']
    for e in table:
        md.append(f'| {e["score"]} | {e["tau_trained_1x"]:.3f} | {e["p_trained_1x"]:.3f} | {e["rho_trained_1x"]:.3f} | '
                  f'{e["tau_trained_4x"]:.3f} | {e["p_trained_4x"]:.3f} | {e["rho_trained_4x"]:.3f} | '
                  f'{e["tau_references_1x"]:.3f} | {e["nan"]} | {e["seconds"]:.2f} |')
    trained = [r['trained_seconds'] / len(archs) for r in rows if 'trained_seconds' in r]
    against = (f', against {np.mean(trained):.1f} s for one trained proxy run of this configuration (mean '
               'of the trained runs, per architecture)' if trained else '')
    md += ['', 'Seconds are per candidate and architecture on one thread (the training-free scores together; '
           f'`early_loss` alone){against}. p: two-sided p-value of tau (scipy); nan: no such trained score. '
           'Failures: candidates whose score is not finite in some architecture.']
    atomic_write_text(os.path.join(out, 'zero_cost.md'), '\n'.join(md) + '\n')
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, len(SCORES), figsize=(3.0 * len(SCORES), 3.0))
        for ax, s in zip(axes, SCORES):
            for kind, colour in (('sample', 'tab:blue'), ('reference', 'tab:red')):
                sub = [r for r in rows if r['kind'] == kind]
                ax.scatter([r['rank'][s] for r in sub], [r['trained_1x'] for r in sub], s=12, c=colour, label=kind)
            e = next(t for t in table if t['score'] == s)
            ax.set_title(f'{s}\ntau {e["tau_trained_1x"]:.2f}', fontsize=9)
            ax.set_xlabel('rank (mean over archs)', fontsize=8)
        axes[0].set_ylabel('trained score (1x)')
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        atomic_savefig(fig, os.path.join(out, 'zero_cost.png'), dpi=100)
        plt.close(fig)
    except Exception as e:  # noqa: BLE001 - a plot failure must not lose the tables
        atomic_write_text(os.path.join(out, 'zero_cost.png.error.txt'), f'{type(e).__name__}: {e}\n')
