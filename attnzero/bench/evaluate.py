"""Bench evaluation of one genome, through the search's own evaluation pipeline.

Nothing here trains a model itself: :func:`evaluate_task` calls
:func:`attnzero.search.evaluate.precheck` (parse, static linear check, program check) and
:func:`attnzero.search.evaluate.training_task` (proxy training with the rejection protocol) -- the
exact functions the search runs -- once per (architecture, seed, epoch budget), and turns their
results into one bench record (:mod:`attnzero.bench.format`).

Differences from a search evaluation, by design:

* every architecture is trained even if another one was rejected (the search stops a candidate at
  its first rejected architecture; a bench wants every cell of the table) -- done by calling
  ``training_task`` with a one-architecture config;
* no ``below_baseline`` early stop (no baseline accuracies are passed): every run that is not
  rejected for a non-finite or non-decreasing loss gets its full-budget accuracy;
* several seeds: seed index ``s`` runs the search config with ``seed=s`` (the per-run seed is then
  :func:`attnzero.search.evaluate.candidate_seed` of that config, as in the search);
* several epoch budgets: budget ``b`` is a separate training run with ``epochs=b`` (its own
  learning-rate schedule); each run also reports the accuracy at the config's checkpoint epoch.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from attnzero.search.archs import PROXY_ARCHS, build_proxy_model
from attnzero.search.config import LEGACY_VALUES, SEARCH_ONLY_FIELDS, SearchConfig
from attnzero.search.evaluate import baseline_seed, baseline_task, candidate_seed, precheck, training_task
from attnzero.search.proxies import load_proxy
from attnzero.space import Genome, fingerprint

from .format import FORMAT_VERSION, settings_id

__all__ = ['BenchSettings', 'NON_TRAINING_FIELDS', 'evaluate_task', 'baseline_eval_task',
           'genome_fields', 'REFERENCE_ATTENTIONS', 'REFERENCE_GENOME_NAMES']

#: SearchConfig fields that only drive the search or its execution (everything else changes what a
#: proxy training computes and is copied into every record)
NON_TRAINING_FIELDS = ('seed', 'space', 'epochs') + SEARCH_ONLY_FIELDS
#: SearchConfig fields added after benches were first built, with the value a bench built before
#: they existed trained with: left out of :meth:`BenchSettings.public` (and so of the settings id)
#: at that value, so that such a bench keeps its id
LATER_FIELDS = {'program_check': True, 'rejection': True, **LEGACY_VALUES}


#: named zoo attentions trained as baselines (``baselines.jsonl``)
REFERENCE_ATTENTIONS = ('softmax', 'linear', 'identity')
#: published / reference genomes of :mod:`attnzero.space` trained like bench genomes
REFERENCE_GENOME_NAMES = ('elu_linear', 'relu_linear', 'trial_105', 'trial_140')


@dataclass
class BenchSettings:
    """What every genome of a bench is evaluated with.

    Attributes:
        search: the :class:`attnzero.search.config.SearchConfig` as a dict (only
            fields not in :data:`NON_TRAINING_FIELDS` matter; ``epochs`` is replaced by each budget).
        seeds: seed indices (each is the search config's ``seed``).
        budgets: epoch budgets (one training run each), ascending.
        ref_tokens, ref_head_dim: size at which the static FLOPs are reported.
    """

    search: Dict[str, Any]
    seeds: List[int] = field(default_factory=lambda: [0])
    budgets: List[int] = field(default_factory=lambda: [3])
    ref_tokens: int = 3136
    ref_head_dim: int = 32

    def __post_init__(self) -> None:
        self.seeds = [int(s) for s in self.seeds]
        self.budgets = sorted(int(b) for b in self.budgets)
        if not self.seeds or not self.budgets:
            raise ValueError('a bench needs at least one seed and one epoch budget')
        if len(set(self.seeds)) != len(self.seeds) or len(set(self.budgets)) != len(self.budgets):
            raise ValueError(f'duplicate seeds {self.seeds} or budgets {self.budgets}')
        if min(self.budgets) < 1:
            raise ValueError(f'epoch budgets must be >= 1, got {self.budgets}')

    @property
    def archs(self) -> List[str]:
        return list(self.search['archs'])

    def config(self, arch: Optional[str] = None, seed: int = 0, epochs: Optional[int] = None):
        """The search config of one run (validated by the search's own rules)."""
        d = dict(self.search)  # from_dict gives a field the settings predate its earlier value
        d.update(seed=int(seed), workers=0, dask_scheduler=None)
        if arch is not None:
            d['archs'] = [arch]
        if epochs is not None:
            d['epochs'] = int(epochs)
            d['checkpoint_epoch'] = min(int(d.get('checkpoint_epoch', 1)), int(epochs))
        return SearchConfig.from_dict(d)

    def public(self) -> Dict[str, Any]:
        """The settings as stored in records and the manifest (training-relevant fields only)."""
        # epochs is replaced by the budgets
        search = {k: v for k, v in sorted(self.search.items()) if k not in NON_TRAINING_FIELDS
                  and not (k in LATER_FIELDS and v == LATER_FIELDS[k])}
        return dict(search=search, seeds=list(self.seeds), budgets=list(self.budgets),
                    ref_tokens=self.ref_tokens, ref_head_dim=self.ref_head_dim)

    @property
    def id(self) -> str:
        return settings_id(self.public())

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> 'BenchSettings':
        return cls(**d)


def genome_fields(genome, ref_tokens: int = 3136, ref_head_dim: int = 32) -> Dict[str, Any]:
    """Static description of a genome: identity, structure, operators, static cost."""
    unary_names, binary_names = genome.op_names()
    cx = genome.complexity()
    static: Dict[str, Any] = dict(kind=cx.kind, code=cx.code, token_degree=cx.token_degree,
                                  ref_tokens=ref_tokens, ref_head_dim=ref_head_dim,
                                  flops_ref=None, flops_poly=None, reason=cx.reason)
    if cx.flops_poly is not None:
        static['flops_ref'] = float(cx.flops(ref_tokens, ref_head_dim))
        static['flops_poly'] = str(cx.flops_poly)
    return dict(
        genome=genome.to_string(), hash=genome.hash, fec=fingerprint(genome),
        cfg=genome.to_attnzero_cfg(), graph=genome.graph,
        unary=[list(x) for x in unary_names], binary=list(binary_names),
        operators=dict(unary=sorted({u for lst in unary_names for u in lst}),
                       binary=sorted(set(binary_names))),
        n_unary_ops=sum(len(x) for x in unary_names),
        is_original=bool(genome.is_original), batch_global=bool(genome.uses_batch_global),
        static=static)


_PARAMS: Dict[str, int] = {}


def _params(settings: BenchSettings, arch: str, attn: str, genome_text: Optional[str]) -> Optional[int]:
    """Parameter count of the proxy model (built with the search's own builder)."""
    key = f'{arch}|{attn}|{genome_text}'
    if key not in _PARAMS:
        try:
            data = load_proxy(settings.search['proxy'])
            model = build_proxy_model(arch, attn, genome_text, data.img_size, data.num_classes,
                                      (settings.search.get('arch_overrides') or {}).get(arch),
                                      data.patch_size)
            _PARAMS[key] = int(sum(p.numel() for p in model.parameters()))
        except Exception:  # noqa: BLE001 - a model that cannot be built has no parameter count
            return None
    return _PARAMS[key]


def _proxy_info(settings: BenchSettings) -> Dict[str, Any]:
    data = load_proxy(settings.search['proxy'])
    return dict(name=settings.search['proxy'], kind=settings.search['proxy'].split('?')[0].split(':')[0],
                num_classes=int(data.num_classes), chance=float(data.chance),
                img_size=int(data.img_size), train=int(len(data.train_x)), val=int(len(data.val_x)),
                test=int(len(data.test_x)))


def arch_config(settings: 'BenchSettings') -> Dict[str, Any]:
    """The effective constructor settings of each proxy ViT (the search's ``PROXY_ARCHS`` with the
    config's ``arch_overrides``): recorded because the proxy defaults live in code."""
    out = {}
    for arch in settings.archs:
        kw = dict(PROXY_ARCHS.get(arch, {}))
        kw.update((settings.search.get('arch_overrides') or {}).get(arch) or {})
        out[arch] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(kw.items())}
    return out


_RUN_KEYS = ('status', 'reason', 'message', 'acc', 'ckpt_acc', 'steps', 'total_steps', 'seconds',
             'flops_per_image', 'gflops', 'loss_first', 'loss_last')


def _summarise(record: Dict[str, Any], settings: BenchSettings, chance: float) -> None:
    """Fill ``acc`` / ``ckpt_acc`` tables and the scalar summaries from ``runs``."""
    runs = record['runs']
    acc: Dict[str, Dict[str, List[Optional[float]]]] = {}
    ckpt: Dict[str, Dict[str, List[Optional[float]]]] = {}
    for arch in settings.archs:
        acc[arch], ckpt[arch] = {}, {}
        for b in settings.budgets:
            row = [r for r in runs if r['arch'] == arch and r['epochs'] == b]
            row.sort(key=lambda r: settings.seeds.index(r['seed_index']))
            acc[arch][str(b)] = [r['acc'] if r['status'] == 'ok' else None for r in row]
            ckpt[arch][str(b)] = [r['ckpt_acc'] for r in row]
    record['acc'], record['ckpt_acc'] = acc, ckpt
    top = str(settings.budgets[-1])
    # separate test column (never a selection criterion): mean test accuracy of the completed runs
    # at the largest budget
    tests = [r['test_acc'] for r in runs if r['epochs'] == settings.budgets[-1] and r['status'] == 'ok'
             and r.get('test_acc') is not None]
    record['test_score'] = sum(tests) / len(tests) if tests else None
    # score: mean over architectures and seeds of the final accuracy at the largest budget; a run
    # stopped by the rejection protocol counts as chance (the search scores it as infeasible)
    vals, all_ok = [], True
    for arch in settings.archs:
        for a in acc[arch][top]:
            if a is None:
                all_ok = False
            vals.append(chance if a is None else a)
    if runs and vals:
        record['score'] = sum(vals) / len(vals)
        record['acc_mean'] = record['score'] if all_ok else None
    else:
        record['score'] = record['acc_mean'] = None
    record['train_seconds'] = float(sum(r.get('seconds') or 0.0 for r in runs))
    rej = [r for r in runs if r['status'] != 'ok']
    if record['status'] == 'check_failed':
        return
    if rej:
        record['status'] = 'rejected' if len(rej) == len(runs) else 'partial'
        record['reject_reason'] = rej[0]['reason']
    else:
        record['status'] = 'ok'


def evaluate_task(payload: Dict[str, Any]) -> Dict[str, Any]:
    """Worker entry point (picklable): one complete bench record for ``payload['genome']``.

    ``payload``: ``genome`` (text), ``settings`` (:meth:`BenchSettings.to_dict`), optional
    ``sample_index`` and ``sampler`` (provenance), ``fec`` (precomputed fingerprint).
    """
    t0 = time.perf_counter()
    settings = BenchSettings.from_dict(payload['settings'])
    if payload.get('seeds'):  # reference genomes may get more seeds than the bench genomes
        settings = BenchSettings(settings.search, list(payload['seeds']), settings.budgets,
                                 settings.ref_tokens, settings.ref_head_dim)
    genome = Genome.parse(payload['genome'])
    rec: Dict[str, Any] = dict(format_version=FORMAT_VERSION)
    rec.update(genome_fields(genome, settings.ref_tokens, settings.ref_head_dim))
    if payload.get('fec') and payload['fec'] != rec['fec']:
        raise RuntimeError(f'fingerprint mismatch for {rec["genome"]}: {payload["fec"]} vs {rec["fec"]}')
    proxy = _proxy_info(settings)
    base = BenchSettings.from_dict(payload['settings'])
    rec.update(proxy=proxy, settings=base.public(), settings_id=base.id,
               sample_index=payload.get('sample_index'), sampler=payload.get('sampler'),
               role=payload.get('role', 'sample'), name=payload.get('name'))
    cfg0 = settings.config(epochs=settings.budgets[-1])
    pre = precheck(rec['genome'], cfg0)
    rec['check'] = dict(ok=bool(pre['ok']), reason='ok' if pre['ok'] else pre['reason'],
                        message=pre['message'], seconds=float(pre['seconds']))
    rec['cost'] = pre['cost']  # the search's cost objective (MFLOPs at cost_tokens x cost_head_dim)
    rec['runs'] = []
    rec['params'] = {}
    rec['status'], rec['reject_reason'] = 'ok', ''
    if not pre['ok']:
        rec['status'], rec['reject_reason'] = 'check_failed', pre['reason']
        _summarise(rec, settings, proxy['chance'])
        rec['eval_seconds'] = time.perf_counter() - t0
        return rec
    for b in settings.budgets:
        for s in settings.seeds:
            for arch in settings.archs:
                cfg = settings.config(arch=arch, seed=s, epochs=b)
                res = training_task(dict(genome=rec['genome'], hash=rec['hash'], config=cfg.to_dict(),
                                         baselines=None, fault=None))
                r = res['per_arch'][0] if res.get('per_arch') else dict(
                    status='rejected', reason=res.get('reason', 'crash'), message=res.get('message', ''))
                run = dict(arch=arch, seed_index=s, epochs=b, ckpt_epoch=cfg.checkpoint_epoch)
                run['seed'] = candidate_seed(cfg, rec['hash'], arch)
                run.update({k: r.get(k) for k in _RUN_KEYS})
                run['status'] = 'ok' if r.get('status') == 'ok' else 'rejected'
                run['test_acc'] = _test_acc(settings, r)
                run['message'] = (run.get('message') or '')[:300]
                rec['runs'].append(run)
    for arch in settings.archs:
        rec['params'][arch] = _params(settings, arch, 'attnzero', rec['genome'])
    rec['arch_config'] = arch_config(settings)
    _summarise(rec, settings, proxy['chance'])
    rec['eval_seconds'] = time.perf_counter() - t0
    return rec


def _test_acc(settings: BenchSettings, run: Dict[str, Any]) -> Optional[float]:
    """Test accuracy of a completed run (the bench's separate test column), from the test-set
    predictions the proxy training recorded; ``None`` for a run without them."""
    if run.get('test_pred') is None:
        return None
    return load_proxy(settings.search['proxy']).test_accuracy(run['test_pred'])


def baseline_eval_task(payload: Dict[str, Any]) -> Dict[str, Any]:
    """Worker entry point: a named zoo attention (``payload['attn']``, e.g. ``'softmax'``) trained
    with the search's ``baseline_task`` (no rejection) for every arch / seed / budget."""
    t0 = time.perf_counter()
    settings = BenchSettings.from_dict(payload['settings'])
    seeds: Sequence[int] = payload.get('seeds') or settings.seeds
    attn = payload['attn']
    proxy = _proxy_info(settings)
    rec: Dict[str, Any] = dict(format_version=FORMAT_VERSION, role='baseline', name=attn, attn=attn,
                               sample_index=None, sampler=None,
                               genome=None, hash=None, fec=None, proxy=proxy,
                               settings=settings.public(), settings_id=settings.id, runs=[],
                               params={}, status='ok', reject_reason='',
                               check=dict(ok=True, reason='ok', message='', seconds=0.0))
    for b in settings.budgets:
        for s in seeds:
            for arch in settings.archs:
                cfg = settings.config(arch=arch, seed=s, epochs=b)
                r = baseline_task(dict(attn=attn, arch=arch, config=cfg.to_dict()))
                run = dict(arch=arch, seed_index=s, epochs=b, ckpt_epoch=cfg.checkpoint_epoch,
                           seed=baseline_seed(cfg, attn, arch))
                run.update({k: r.get(k) for k in _RUN_KEYS})
                run['status'] = 'ok' if r.get('status') == 'ok' else 'rejected'
                run['test_acc'] = _test_acc(settings, r)
                rec['runs'].append(run)
    for arch in settings.archs:
        rec['params'][arch] = _params(settings, arch, attn, None)
    s2 = BenchSettings(settings.search, list(seeds), settings.budgets, settings.ref_tokens,
                       settings.ref_head_dim)
    _summarise(rec, s2, proxy['chance'])
    rec['eval_seconds'] = time.perf_counter() - t0
    return rec
