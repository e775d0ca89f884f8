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
  learning-rate schedule); each run also reports the accuracy at the config's checkpoint epoch;
* rungs (a multi-fidelity bench, format version 2): the first budget's training is paused at each
  rung (the search's successive-halving rungs) and its accuracy recorded there; a genome's first
  level is the first rung alone (:func:`evaluate_task` with ``level='rung'``), and the builder
  continues a promoted genome's paused runs to the full budget (:func:`level_task`), which gives
  exactly the one-piece training.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence

from attnzero.search.archs import PROXY_ARCHS, build_proxy_model
from attnzero.search.config import LEGACY_VALUES, SEARCH_ONLY_FIELDS, SearchConfig
from attnzero.search.evaluate import baseline_seed, candidate_seed, precheck, training_task
from attnzero.search.train import train_proxy
from attnzero.search.proxies import load_proxy
from attnzero.space import Genome, fingerprint

from .format import FORMAT_VERSION, settings_id
from .records import budget_key, summarise

__all__ = ['BenchSettings', 'NON_TRAINING_FIELDS', 'evaluate_task', 'baseline_eval_task', 'level_task',
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
    rungs: List[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.seeds = [int(s) for s in self.seeds]
        self.budgets = sorted(int(b) for b in self.budgets)
        self.rungs = sorted(float(r) for r in self.rungs or [])
        if not self.seeds or not self.budgets:
            raise ValueError('a bench needs at least one seed and one epoch budget')
        if len(set(self.seeds)) != len(self.seeds) or len(set(self.budgets)) != len(self.budgets):
            raise ValueError(f'duplicate seeds {self.seeds} or budgets {self.budgets}')
        if min(self.budgets) < 1:
            raise ValueError(f'epoch budgets must be >= 1, got {self.budgets}')
        if len(set(map(budget_key, self.rungs))) != len(self.rungs) or any(
                not 0 < r < self.budgets[0] for r in self.rungs):
            raise ValueError(f'rungs must be distinct epoch counts between 0 and the first budget '
                             f'({self.budgets[0]}), got {self.rungs}')

    @property
    def multi_fidelity(self) -> bool:
        """A bench with rungs (format version 2): a genome holds the levels it was promoted to."""
        return bool(self.rungs)

    @property
    def format_version(self) -> int:
        return FORMAT_VERSION if self.multi_fidelity else 1

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
        out = dict(search=search, seeds=list(self.seeds), budgets=list(self.budgets),
                   ref_tokens=self.ref_tokens, ref_head_dim=self.ref_head_dim)
        if self.rungs:  # a single-fidelity bench keeps the settings id it had before rungs existed
            out['rungs'] = list(self.rungs)
        return out

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
    patch = load_proxy(settings.search['proxy']).patch_size
    for arch in settings.archs:
        kw = dict(PROXY_ARCHS.get(arch, {}))
        if patch is not None and 'patch_size' in kw:  # the proxy's tokenisation, as the builder applies it
            kw['patch_size'] = int(patch)
        kw.update((settings.search.get('arch_overrides') or {}).get(arch) or {})
        out[arch] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(kw.items())}
    return out


_RUN_KEYS = ('status', 'reason', 'message', 'acc', 'ckpt_acc', 'steps', 'total_steps', 'seconds',
             'cpu_seconds', 'flops_per_image', 'gflops', 'loss_first', 'loss_last')


def _summarise(record: Dict[str, Any], settings: BenchSettings, chance: float) -> None:
    """:func:`attnzero.bench.records.summarise` with these settings."""
    summarise(record, settings.public(), chance, seeds=settings.seeds)


def _train(settings: BenchSettings, arch: str, seed_index: int, budget: int, *,
           genome: Optional[str] = None, key: Optional[str] = None, attn: Optional[str] = None,
           stop: Optional[float] = None, resume: Optional[bytes] = None):
    """One training run of a genome (with the search's ``training_task``: the rejection protocol,
    no ``below_baseline`` stop) or of a named zoo attention (``attn``: the search's baseline
    training, no rejection), at ``budget`` epochs or paused at ``stop`` epochs of that schedule,
    from scratch or continued from ``resume`` (state bytes of a paused run).

    Returns ``(run, state)``: the run's record entry and, for a paused run, its training state."""
    cfg = settings.config(arch=arch, seed=seed_index, epochs=budget)
    if attn is None:
        res = training_task(dict(genome=genome, hash=key, config=cfg.to_dict(), baselines=None,
                                 fault=None, rung=dict(stop_epochs=stop,
                                                       resume={arch: resume} if resume else None)))
        r = res['per_arch'][0] if res.get('per_arch') else dict(
            status='rejected', reason=res.get('reason', 'crash'), message=res.get('message', ''))
        state = (res.get('states') or {}).get(arch)
        seed = candidate_seed(cfg, key, arch)
    else:
        data = load_proxy(cfg.proxy)
        seed = baseline_seed(cfg, attn, arch)
        r = train_proxy(arch, attn, None, cfg, data, seed, reject=False, stop_epochs=stop, resume=resume)
        state = r.pop('state', None)
    run = dict(arch=arch, seed_index=seed_index, epochs=float(stop) if stop is not None else budget,
               ckpt_epoch=cfg.checkpoint_epoch, seed=seed)
    run.update({k: r.get(k) for k in _RUN_KEYS})
    run['status'] = 'ok' if r.get('status') == 'ok' else 'rejected'
    run['test_acc'] = _test_acc(settings, r)
    run['message'] = (run.get('message') or '')[:300]
    if r.get('paused'):
        run['paused'] = True
    if resume is not None:
        run['resumed'] = True
    return run, (state if run['status'] == 'ok' else None)


def _runs(settings: BenchSettings, seeds: Sequence[int], budgets: Sequence[int], **who) -> List[Dict[str, Any]]:
    """Every run of a record trained whole: each budget x seed x architecture; in a bench with rungs
    the first budget is trained in segments (each rung, then the rest), so that the record holds the
    rung accuracies of the same training."""
    runs = []
    for b in budgets:
        for s in seeds:
            for arch in settings.archs:
                state = None
                if b == settings.budgets[0] and settings.rungs:
                    for rung in settings.rungs:
                        run, state = _train(settings, arch, s, b, stop=rung, resume=state, **who)
                        runs.append(run)
                        if state is None:  # rejected at the rung: no later segment
                            break
                    if state is None:
                        continue
                run, _ = _train(settings, arch, s, b, resume=state, **who)
                runs.append(run)
    return runs


def _base_record(settings: BenchSettings, payload: Dict[str, Any]) -> Dict[str, Any]:
    base = BenchSettings.from_dict(payload['settings'])
    return dict(format_version=base.format_version, proxy=_proxy_info(settings),
                settings=base.public(), settings_id=base.id, source=payload.get('source'))


def evaluate_task(payload: Dict[str, Any]) -> Dict[str, Any]:
    """Worker entry point (picklable): one complete bench record for ``payload['genome']``.

    ``payload``: ``genome`` (text), ``settings`` (:meth:`BenchSettings.to_dict`), optional
    ``sample_index`` and ``sampler`` (provenance), ``source`` (how the genome was chosen), ``fec``
    (precomputed fingerprint), ``seeds`` and ``budgets`` (subsets: a reference genome gets more seeds),
    and ``level``: ``None`` (every budget, the first one through its rungs) or ``'rung'`` (a
    multi-fidelity bench's first level: each seed and architecture trained to the first rung only;
    the record then carries ``_states`` ``{'<arch>:<seed>': bytes}`` of the paused runs, which the
    builder keeps for a promotion and never writes to the bench).
    """
    t0 = time.perf_counter()
    settings = BenchSettings.from_dict(payload['settings'])
    if payload.get('seeds'):  # reference genomes may get more seeds than the bench genomes
        settings = replace(settings, seeds=list(payload['seeds']))
    genome = Genome.parse(payload['genome'])
    rec: Dict[str, Any] = _base_record(settings, payload)
    rec.update(genome_fields(genome, settings.ref_tokens, settings.ref_head_dim))
    if payload.get('fec') and payload['fec'] != rec['fec']:
        raise RuntimeError(f'fingerprint mismatch for {rec["genome"]}: {payload["fec"]} vs {rec["fec"]}')
    rec.update(sample_index=payload.get('sample_index'), sampler=payload.get('sampler'),
               role=payload.get('role', 'sample'), name=payload.get('name'))
    if payload.get('batch') is not None:
        rec['batch'] = payload['batch']
    cfg0 = settings.config(epochs=settings.budgets[-1])
    pre = precheck(rec['genome'], cfg0)
    rec['check'] = dict(ok=bool(pre['ok']), reason='ok' if pre['ok'] else pre['reason'],
                        message=pre['message'], seconds=float(pre['seconds']))
    rec['cost'] = pre['cost']  # the search's cost objective (MFLOPs at cost_tokens x cost_head_dim)
    rec['runs'] = []
    rec['params'] = {}
    rec['status'], rec['reject_reason'] = 'ok', ''
    chance = rec['proxy']['chance']
    if not pre['ok']:
        rec['status'], rec['reject_reason'] = 'check_failed', pre['reason']
        _summarise(rec, settings, chance)
        rec['eval_seconds'] = time.perf_counter() - t0
        return rec
    who = dict(genome=rec['genome'], key=rec['hash'])
    if payload.get('level') == 'rung':
        if not settings.rungs:
            raise ValueError('level "rung" needs a bench with rungs')
        states = {}
        for s in settings.seeds:
            for arch in settings.archs:
                run, state = _train(settings, arch, s, settings.budgets[0], stop=settings.rungs[0], **who)
                rec['runs'].append(run)
                if state is not None:
                    states[f'{arch}:{s}'] = state
        rec['_states'] = states
    else:
        rec['runs'] = _runs(settings, settings.seeds, payload.get('budgets') or settings.budgets, **who)
    for arch in settings.archs:
        rec['params'][arch] = _params(settings, arch, 'attnzero', rec['genome'])
    rec['arch_config'] = arch_config(settings)
    _summarise(rec, settings, chance)
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
    like the search's ``baseline_task`` (no rejection) for every arch / seed / budget (``seeds``,
    ``budgets``: subsets); in a bench with rungs the first budget through its rungs."""
    t0 = time.perf_counter()
    settings = BenchSettings.from_dict(payload['settings'])
    seeds: Sequence[int] = payload.get('seeds') or settings.seeds
    attn = payload['attn']
    s2 = replace(settings, seeds=list(seeds))
    rec: Dict[str, Any] = _base_record(settings, payload)
    rec.update(role='baseline', name=attn, attn=attn, sample_index=None, sampler=None,
               genome=None, hash=None, fec=None, runs=[], params={}, status='ok', reject_reason='',
               check=dict(ok=True, reason='ok', message='', seconds=0.0))
    if not rec.get('source'):
        rec.pop('source')
    rec['runs'] = _runs(s2, list(seeds), payload.get('budgets') or settings.budgets, attn=attn)
    for arch in settings.archs:
        rec['params'][arch] = _params(settings, arch, attn, None)
    _summarise(rec, s2, rec['proxy']['chance'])
    rec['eval_seconds'] = time.perf_counter() - t0
    return rec


def level_task(payload: Dict[str, Any]) -> Dict[str, Any]:
    """Worker entry point: a later level of a multi-fidelity bench for one record -- its runs at
    ``payload['budget']`` for ``seeds`` (default: the bench's) and every architecture, continued
    from the record's paused rung runs where ``states`` (``{'<arch>:<seed>': bytes}``) holds them
    (the first budget), else trained from scratch (a longer budget has its own schedule; a lost
    rung state is retrained, which gives the same result). ``key`` is the record's hash (a genome:
    ``genome``) or name (a zoo attention: ``attn``). With ``arch`` (an architecture outside the
    bench's) the runs are of that architecture, trained whole through the rungs. With ``rung_only``
    (the retest level) the runs are the rung again, from scratch, at ``seeds`` (the line gets
    ``retest: true``). Returns one ``levels.jsonl`` line."""
    t0 = time.perf_counter()
    settings = BenchSettings.from_dict(payload['settings'])
    budget = int(payload['budget'])
    if budget not in settings.budgets:
        raise ValueError(f'budget {budget} is not one of the bench budgets {settings.budgets}')
    seeds = list(payload.get('seeds') or settings.seeds)
    states = payload.get('states') or {}
    if payload.get('attn'):
        who = dict(attn=payload['attn'])
    else:
        who = dict(genome=payload['genome'], key=payload['key'])
    cross_arch = payload.get('arch')
    rung_only = bool(payload.get('rung_only'))
    if rung_only:  # the retest level: the rung again (the first budget's schedule, paused), other seeds
        if budget != settings.budgets[0] or not settings.rungs or cross_arch is not None or states:
            raise ValueError('rung_only trains the rung of the first budget from scratch, in the bench\'s '
                             f'architectures (budget {budget}, rungs {settings.rungs}, arch {cross_arch})')
        runs = [_train(settings, arch, s, budget, stop=settings.rungs[0], **who)[0]
                for s in seeds for arch in settings.archs]
        resumed = False
    elif cross_arch is not None:  # another architecture than the bench's: trained whole (through the rungs)
        runs = _runs(replace(settings, search=dict(settings.search, archs=[cross_arch]), seeds=seeds),
                     seeds, [budget], **who)
        resumed = False
    else:
        runs = []
        for s in seeds:
            for arch in settings.archs:
                state = states.get(f'{arch}:{s}') if budget == settings.budgets[0] else None
                if state is None and budget == settings.budgets[0] and settings.rungs:
                    # the rung state is gone: retrain the rung (deterministic: the same run)
                    _, state = _train(settings, arch, s, budget, stop=settings.rungs[0], **who)
                run, _ = _train(settings, arch, s, budget, resume=state, **who)
                runs.append(run)
        resumed = bool(states) and budget == settings.budgets[0]
    line = dict(format_version=settings.format_version, key=payload['key'], budget=budget,
                genome=payload.get('genome'), name=payload.get('name'), runs=runs,
                selection=payload.get('selection'), batch=payload.get('batch'), resumed=resumed,
                settings_id=settings.id, eval_seconds=time.perf_counter() - t0)
    if cross_arch is not None:
        line['arch'] = cross_arch
    if rung_only:
        line['retest'] = True
    return line
