"""Search configuration: one dataclass, JSON round-trip, named presets, validation.

Every knob of the search lives here and is written to ``RUN_DIR/config.json``; a resumed run reads it
back (so a resume cannot silently change the search).
"""
from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from attnzero.space import TRIAL_105, Genome
from attnzero.space.features import FEATURE_SETS
from attnzero.space.shape import SHAPE_SPACES, JointGenome, ShapeError

from .archs import ARCHS
from .proxies import DEFAULT_PROXY, parse_proxy_spec

__all__ = ['SearchConfig', 'ConfigError', 'PRESETS', 'preset', 'ACCELERATOR_FIELDS', 'SEARCH_ONLY_FIELDS',
           'PRESCREEN_SCORES', 'with_defaults', 'LEGACY_VALUES', 'SPACES', 'DEFAULT_PROXY_SHAPE', 'JOINT_SEED_SHAPE',
           'SHAPE_EVALUATORS']

ACC_MODES = ('mean', 'per_arch')
#: the search spaces: the attention genome's (``default``; ``original``: the paper's operator set
#: only) and the joint one (``joint``: a ViT shape of ``SearchConfig.shape_space`` beside the genome)
SPACES = ('default', 'original', 'joint')
COST_MODES = ('flops', 'latency')
#: the on/off switches of the search's accelerators (see :class:`SearchConfig`)
ACCELERATOR_FIELDS = ('program_check', 'cache', 'rejection')
#: fields that only steer the search and its execution, never what a candidate's proxy training
#: computes: the one list behind the identities of trained results (the fidelity tool's run keys,
#: the bench's settings id), which each add the fields they vary or report themselves. A new field
#: of this kind goes here, or those identities change.
SEARCH_ONLY_FIELDS = ('pop_size', 'generations', 'n_offsprings', 'crossover_prob', 'mutation_prob',
                      'init_genomes', 'acc_objective', 'baseline', 'min_acc_ratio', 'workers',
                      'dask_scheduler', 'eval_timeout_s', 'retries', 'fault_injection', 'cache',
                      'rungs', 'eta', 'promote_by', 'prescreen', 'prescreen_keep', 'prescreen_by', 'surrogate',
                      'surrogate_min', 'surrogate_z', 'surrogate_rungs', 'prior', 'prior_key', 'prior_where',
                      'prior_keep', 'prior_features', 'shape_space', 'shape_evaluator')
#: the default proxy's architectures and their shapes (``docs/fidelity/DESIGN.md`` says why: depth
#: is what makes the proxy rank hydra's global gating below the attentions that route between
#: tokens; an 8-block DeiT of width 32 ranks the published attentions better over five seeds than
#: the 4-block width-48 one (``scenes-v3``), which ranked far better than the 2-block width-64 one of
#: :data:`attnzero.search.archs.PROXY_ARCHS`, at about the same cost; one architecture keeps a
#: candidate's evaluation within the 60 s budget of this project's 2-core machines)
DEFAULT_ARCHS = ('deit',)
DEFAULT_ARCH_OVERRIDES: Dict[str, Dict[str, Any]] = {'deit': {'depth': 8, 'embed_dim': 32}}
#: the default proxy's DeiT as a shape text (width 32, 8 blocks of 2 heads of 16 channels, MLP ratio
#: 2: ``PROXY_ARCHS['deit']`` with :data:`DEFAULT_ARCH_OVERRIDES`; docs/fidelity/DESIGN.md, fifth round)
DEFAULT_PROXY_SHAPE = 'e32:hd16:h2,2,2,2,2,2,2,2:r2,2,2,2,2,2,2,2'
#: the centre of the ``proxy`` shape space (:data:`attnzero.space.shape.SHAPE_SPACES`): the DeiT of
#: the ``scenes-v3`` proxy (4 blocks at width 48), which the space was built around; the joint
#: search starts from it (with Trial-105) and the supernet measurement always samples it
JOINT_SEED_SHAPE = 'e48:hd24:h2,2,2,2:r2,2,2,2'


def _seed_shape_overrides() -> Dict[str, Dict[str, Any]]:
    """``arch_overrides`` of the DeiT at :data:`JOINT_SEED_SHAPE` (the ``scenes-v3`` proxy's), a
    fresh dict per preset."""
    return {'deit': {'depth': 4, 'embed_dim': 48}}


#: how the joint search scores a candidate's shape (:class:`SearchConfig`, ``shape_evaluator``)
SHAPE_EVALUATORS = ('train', 'supernet')
#: the pre-screen scores (:mod:`attnzero.search.prescreen`) a search can defer candidates by
PRESCREEN_SCORES = ('grad_norm', 'snip', 'synflow', 'naswot', 'attn_rank', 'early_loss')


class ConfigError(ValueError):
    """A configuration value that cannot work (names the field and the value)."""


@dataclass
class SearchConfig:
    """All settings of one search run.

    Search (pymoo NSGA-II):
        seed: run seed (NSGA-II random state, candidate training seeds).
        pop_size, generations: population size and number of generations (the initial population
            counts as generation 1).
        n_offsprings: offspring per generation (default ``pop_size``).
        crossover_prob, mutation_prob: probability that a mating uses crossover / that a child is
            mutated (a child that is neither is removed as a duplicate of its parent).
        space: the search space: ``'default'`` or ``'original'`` (attention genomes; ``original``:
            the paper's operator set only), or ``'joint'``: an individual is a
            :class:`~attnzero.space.shape.JointGenome` (``'<ViT shape>|<attention genome>'``), the
            shape drawn and varied in ``shape_space``, the genome in the default distribution.
            The joint space trains the DeiT proxy only (``archs == ['deit']``) at the candidate's
            shape, and its objectives are the proxy accuracy and the parameters and MACs of the
            candidate at full size (224 px, 1000 classes; computed analytically,
            :func:`attnzero.space.shape.vit_params` / ``vit_macs``), so ``cost``, ``cost_tokens``
            and ``cost_head_dim`` are not used there (``cost`` must stay ``'flops'``). The
            rejection baseline stays the softmax proxy at the default shape (``arch_overrides``).
        shape_space: the shape space of the joint search (:data:`attnzero.space.shape.SHAPE_SPACES`:
            ``'proxy'``, a scaled-down space the CPU proxy trains in; ``'autoformer_t'``, AutoFormer's
            tiny space at full size). Not used by the other spaces.
        shape_evaluator: how the joint space scores a candidate: ``'train'`` (the default: the
            DeiT proxy trained at the candidate's shape) or ``'supernet'`` (the validation accuracy
            of the candidate's shape with weights inherited from the weight-sharing supernet of its
            attention genome -- :mod:`attnzero.search.supernet`, AutoFormer's weight entanglement
            -- trained once per genome, for twice the epochs, and stored in
            ``RUN_DIR/supernets/<genome hash>.pt``; no rejection protocol for the candidate, only
            a non-finite training loss rejects its genome). Joint space only, without ``rungs`` or
            ``prescreen``. Like ``rungs``, a search-only field: it picks which result a candidate
            gets, not what a proxy training computes.
        init_genomes: canonical genomes put into the initial population (e.g. Trial-105; joint
            texts ``'<shape>|<genome>'`` of ``shape_space`` in the joint space).
        allow_quadratic: let quadratic genomes through the static check (baselines, ablations).

Accelerators (each ``True`` by default; all ``False`` is the *naive* search that
``tools/search_efficiency.py`` measures the search against -- :mod:`attnzero.search.efficiency`):
        program_check: run the static linear-cost check and the program check
            (:func:`attnzero.search.evaluate.precheck`) before training and reject what fails
            (``stage='check'``). ``False``: the genome is only parsed and its cost computed; every
            candidate is trained, and one that cannot run is a ``crash`` of its training.
        cache: answer a candidate seen before (same canonical hash, or the same function by the
            functional-equivalence fingerprint) from the cache, and let NSGA-II drop offspring that
            compute the same function as another individual. ``False``: no evaluation cache (a
            duplicate proposed again is trained again) and NSGA-II drops only offspring with the
            same genome text (what an off-the-shelf NSGA-II does).
        rejection: the rejection protocol below. ``False``: every candidate trains the full
            budget: no early stop, no checkpoint evaluation, and no baseline trainings (the
            protocol is their only use). A training that raises is still recorded as ``crash``.
        rungs: successive-halving rungs over the training budget (``1``: off, the default). With
            ``k`` rungs the candidates of a generation that go to training first train
            ``epochs / eta^(k-1)`` epochs (a fraction of an epoch is rounded up to a whole step),
            the best ``1/eta`` of them (by mean proxy accuracy; the rejected never) continue to
            ``eta`` times that, and so on up to ``epochs``. A rung *continues* the training of the
            rung below: the training follows the full budget's schedule and pauses at the rung's
            budget, and a promoted candidate resumes from the saved training state, so the last
            rung's result is exactly the one-rung result and the compute of the lower rungs is
            not spent again. A candidate that is not promoted keeps the validation accuracy at
            its last rung, recorded with its budget (``fidelity_epochs``) and ``stage='rung<r>'``:
            deferred, not dropped. Results and training states of every rung are checkpointed, so
            a kill loses none and a resume makes the same promotions.
        eta: the promotion factor of the rungs (``>= 2``).
        promote_by: which candidates of a rung are promoted: ``'accuracy'`` (the default: the best
            ``1/eta`` by mean proxy accuracy at the rung, successive halving's rule) or
            ``'pareto'`` (the first ``1/eta`` in NSGA-II's order of the search's objectives with
            the rung's accuracy: non-dominated front, then crowding distance, as multi-objective
            successive halving does; a cheap candidate of moderate accuracy that extends the front
            is promoted instead of a costly one that a more accurate candidate dominates).
        prescreen: defer candidates by a pre-screen score (``''``: off, the default; one of
            :data:`PRESCREEN_SCORES`, :mod:`attnzero.search.prescreen`): the candidates of a
            generation that would train are scored in every proxy architecture at initialisation
            (``early_loss``: after 16 steps), ranked by the mean of their per-architecture ranks,
            and only the best ``prescreen_keep`` of them train. The others are recorded as
            ``rejected`` with reason ``deferred`` (``stage='prescreen'``), their score and rank in
            the message, and are no cache source: proposed again, they are scored again. Scores are
            checkpointed; their CPU time counts in ``check_cpu_seconds``.
        prescreen_keep: the fraction of a generation's scored candidates that train (``(0, 1]``).
        prescreen_by: how the scored candidates are ranked: ``'score'`` (the default: by the mean
            of their per-architecture score ranks) or ``'pareto'`` (in NSGA-II's order of (that
            mean rank, the cost objective), as the prior ranks: the score alone keeps the best
            scored whatever they cost).
        surrogate: defer candidates by the online accuracy surrogate (:mod:`attnzero.search.surrogate`;
            off by default): before a generation trains, a Bayesian ridge fitted on the run's
            full-budget results of the earlier generations predicts each candidate's accuracy; one
            whose optimistic prediction (mean + ``surrogate_z`` standard deviations) is dominated
            by a result the run has is recorded as ``rejected`` with reason ``deferred``
            (``stage='surrogate'``) and not trained. Needs scikit-learn and ``acc_objective='mean'``.
        surrogate_min: the results the surrogate needs before it defers anything (``>= 3``;
            genomes, with ``surrogate_rungs`` those with a result at any rung).
        surrogate_z: predictive standard deviations added to the prediction (``>= 0``; larger
            defers less).
        surrogate_rungs: the surrogate also learns from the lower successive-halving rungs'
            results, with the fraction of the full budget as one more feature, and predicts at
            the full budget (``False``: full-budget results only, the default).
        prior: warm start from results measured before the search (``''``: off, the default): a
            JSON-lines file of ``genome`` + score lines, e.g. a shipped Attn-Bench-101's
            ``bench.jsonl`` (:mod:`attnzero.search.prior`). A model fitted on it ranks each
            generation's candidates before they train; only the best ``prior_keep`` train, the
            others are recorded as ``rejected`` with reason ``deferred`` (``stage='prior'``).
        prior_key: the score's ``:``-separated path in a line (``'score'``; a multi-fidelity bench's
            rung: ``'scores:0.6667'``).
        prior_where: keep only lines matching ``path=value[,path=value]`` (``'source:kind=random'``:
            a bench's random-stream genomes only).
        prior_keep: the fraction of a generation's candidates that train (``(0, 1]``).
        prior_features: the prior model's features (:data:`attnzero.space.features.FEATURE_SETS`):
            ``'syntax'`` (default: the genome's text), ``'syntax+probe'`` (and what its attention
            does on a fixed probe input) or ``'syntax+probe+grad'`` (and how a signal at its output
            reaches q, k and v there; not measured in a search). The probe features rank the efficiency runs' genomes
            better offline (Kendall tau 0.27 against 0.15) but did not make the measured search
            faster (median 2.12x against 2.74x over 3 seeds: ``docs/efficiency/search/prior``).

    Objectives:
        archs: proxy architectures (:data:`attnzero.search.archs.ARCHS`).
        acc_objective: ``'mean'`` (one accuracy objective, the mean over ``archs``) or
            ``'per_arch'`` (one per architecture).
        cost: ``'flops'`` (static FLOPs of the genome at ``cost_tokens`` tokens and head width
            ``cost_head_dim``) or ``'latency'`` (measured ms of the compiled genome at that size).

    Proxy training (the full per-architecture budget):
        proxy: proxy spec (:func:`attnzero.search.proxies.load_proxy`).
        arch_overrides: per-architecture constructor overrides of the tiny proxy models.
        epochs, batch_size, lr, weight_decay, warmup_frac, grad_clip: AdamW with one-cycle
            (linear warm-up, cosine decay) schedule.
        threads: torch threads per evaluation (fixed so that evaluations are reproducible).
        proxy_init: ``'torch'`` re-initialises every Linear layer with PyTorch's default
            (kaiming-uniform; larger than the backbones' trunc-normal(0.02)), which breaks the
            symmetry of near-uniform attention within the few hundred steps of a proxy run;
            ``'model'`` keeps the backbone's own initialisation.
        common_seed: common random numbers. Every candidate of a run (and the baseline) trains
            from one seed per architecture, with the same data order and the same initial weights
            in every layer outside the attention kernel (those of a softmax model built from that
            seed), so that two candidates' accuracies differ by their attention, not by the luck
            of their draws. ``False``: one seed per candidate, drawn from its hash (the earlier
            protocol; configs written before this field existed mean ``False``).

    Rejection protocol (only with ``rejection=True``):
        reject_nonfinite: stop at the first non-finite loss.
        loss_check_frac, min_loss_drop: after ``loss_check_frac`` of the training steps the mean
            loss of the latest window must be below ``(1 - min_loss_drop)`` times the mean of the
            first window, else ``loss_not_decreasing``.
        checkpoint_epoch: epoch after which test accuracy is compared with the baseline's at the
            same epoch (``0`` disables); reject ``below_baseline`` if
            ``acc < chance + min_acc_ratio * (baseline_acc - chance)``.
        baseline: attention trained once per architecture to set that threshold.

    Execution:
        workers: ``0`` = evaluate in this process; ``N`` = N local worker processes.
        dask_scheduler: ``tcp://host:port`` of a Dask scheduler (overrides ``workers``).
        eval_timeout_s: a worker evaluation running longer is abandoned (and retried once).
        retries: how often a lost evaluation (worker died / timeout) is retried.
        fault_injection: test hook, ``{canonical genome: 'nan' | 'raise' | 'exit' | 'hang'}``.
    """

    # search
    seed: int = 0
    pop_size: int = 8
    generations: int = 4
    n_offsprings: Optional[int] = None
    crossover_prob: float = 0.5
    mutation_prob: float = 0.9
    space: str = 'default'
    shape_space: str = 'proxy'
    shape_evaluator: str = 'train'
    init_genomes: List[str] = field(default_factory=list)
    allow_quadratic: bool = False
    # accelerators (all False: the naive search)
    program_check: bool = True
    cache: bool = True
    rejection: bool = True
    rungs: int = 1
    eta: int = 3
    promote_by: str = 'accuracy'
    prescreen: str = ''
    prescreen_keep: float = 0.5
    prescreen_by: str = 'score'
    surrogate: bool = False
    surrogate_min: int = 8
    surrogate_z: float = 1.0
    surrogate_rungs: bool = False
    prior: str = ''
    prior_key: str = 'score'
    prior_where: str = ''
    prior_keep: float = 0.5
    prior_features: str = 'syntax'
    # objectives
    archs: List[str] = field(default_factory=lambda: list(DEFAULT_ARCHS))
    acc_objective: str = 'mean'
    cost: str = 'flops'
    cost_tokens: int = 3136
    cost_head_dim: int = 32
    # proxy training
    proxy: str = DEFAULT_PROXY
    arch_overrides: Dict[str, Dict[str, Any]] = field(
        default_factory=lambda: copy.deepcopy(DEFAULT_ARCH_OVERRIDES))
    epochs: int = 2
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_frac: float = 0.1
    grad_clip: float = 5.0
    threads: int = 1
    proxy_init: str = 'torch'
    common_seed: bool = True
    # rejection protocol
    reject_nonfinite: bool = True
    loss_check_frac: float = 0.34
    min_loss_drop: float = 0.0
    checkpoint_epoch: int = 1
    min_acc_ratio: float = 0.05
    baseline: str = 'softmax'
    # execution
    workers: int = 0
    dask_scheduler: Optional[str] = None
    eval_timeout_s: float = 600.0
    retries: int = 1
    fault_injection: Dict[str, str] = field(default_factory=dict)

    # ---- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> 'SearchConfig':
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(data) - known)
        if bad:
            raise ConfigError(f'unknown config keys {bad}; known: {sorted(known)}')
        # a stored config that predates a field trained with that field's earlier value
        cfg = cls(**with_defaults(data))
        cfg.validate()
        return cfg

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **kw: Any) -> 'SearchConfig':
        cfg = dataclasses.replace(self, **kw)
        cfg.validate()
        return cfg

    # ---- checks ---------------------------------------------------------------------------
    def validate(self) -> 'SearchConfig':
        def need(cond: bool, name: str, msg: str) -> None:
            if not cond:
                raise ConfigError(f'{name}={getattr(self, name)!r}: {msg}')

        need(self.pop_size >= 2, 'pop_size', 'must be >= 2')
        need(self.generations >= 1, 'generations', 'must be >= 1')
        need(self.n_offsprings is None or self.n_offsprings >= 1, 'n_offsprings', 'must be >= 1')
        need(0.0 <= self.crossover_prob <= 1.0, 'crossover_prob', 'must be in [0, 1]')
        need(0.0 <= self.mutation_prob <= 1.0, 'mutation_prob', 'must be in [0, 1]')
        need(self.space in SPACES, 'space', f"must be one of {', '.join(SPACES)}")
        need(self.shape_space in SHAPE_SPACES, 'shape_space', f"must be one of {', '.join(SHAPE_SPACES)}")
        for name in ACCELERATOR_FIELDS:
            need(isinstance(getattr(self, name), bool), name, 'must be true or false')
        need(isinstance(self.rungs, int) and 1 <= self.rungs <= 4, 'rungs', 'must be an integer in 1..4')
        need(isinstance(self.eta, int) and self.eta >= 2, 'eta', 'must be an integer >= 2')
        need(self.prescreen in ('',) + PRESCREEN_SCORES, 'prescreen',
             f"must be '' (off) or one of {', '.join(PRESCREEN_SCORES)}")
        need(0.0 < self.prescreen_keep <= 1.0, 'prescreen_keep', 'must be in (0, 1]')
        need(self.promote_by in ('accuracy', 'pareto'), 'promote_by', "must be 'accuracy' or 'pareto'")
        need(self.prescreen_by in ('score', 'pareto'), 'prescreen_by', "must be 'score' or 'pareto'")
        need(isinstance(self.surrogate, bool), 'surrogate', 'must be true or false')
        need(isinstance(self.surrogate_min, int) and self.surrogate_min >= 3, 'surrogate_min',
             'must be an integer >= 3')
        need(isinstance(self.surrogate_z, (int, float)) and self.surrogate_z >= 0, 'surrogate_z', 'must be >= 0')
        need(isinstance(self.surrogate_rungs, bool), 'surrogate_rungs', 'must be true or false')
        need(isinstance(self.prior, str), 'prior', 'must be a file path or empty')
        need(isinstance(self.prior_key, str) and self.prior_key != '', 'prior_key', 'must be a non-empty path')
        need(isinstance(self.prior_where, str), 'prior_where', 'must be a string')
        need(isinstance(self.prior_keep, (int, float)) and 0.0 < self.prior_keep <= 1.0, 'prior_keep',
             'must be in (0, 1]')
        need(self.prior_features in FEATURE_SETS, 'prior_features', f'must be one of {", ".join(FEATURE_SETS)}')
        if self.surrogate:
            need(self.acc_objective == 'mean', 'acc_objective', "the surrogate predicts the mean accuracy: "
                 "surrogate=True needs acc_objective='mean'")
        need(isinstance(self.archs, (list, tuple)) and len(self.archs) > 0, 'archs',
             'must name at least one architecture')
        for a in self.archs:
            if a not in ARCHS:
                raise ConfigError(f'unknown proxy architecture {a!r} in archs; known: {", ".join(ARCHS)}')
        need(len(set(self.archs)) == len(self.archs), 'archs', 'has duplicates')
        for a in self.arch_overrides:
            if a not in ARCHS:
                raise ConfigError(f'arch_overrides names unknown architecture {a!r}; known: {", ".join(ARCHS)}')
        need(self.acc_objective in ACC_MODES, 'acc_objective', f'must be one of {ACC_MODES}')
        need(self.cost in COST_MODES, 'cost', f'must be one of {COST_MODES}')
        need(self.cost_tokens >= 1 and self.cost_head_dim >= 1, 'cost_tokens', 'sizes must be >= 1')
        parse_proxy_spec(self.proxy)  # raises ProxyError naming the bad spec
        need(self.epochs >= 1, 'epochs', 'must be >= 1')
        need(self.batch_size >= 1, 'batch_size', 'must be >= 1')
        need(self.lr > 0, 'lr', 'must be > 0')
        need(0.0 <= self.warmup_frac < 1.0, 'warmup_frac', 'must be in [0, 1)')
        need(self.threads >= 1, 'threads', 'must be >= 1')
        need(self.proxy_init in ('torch', 'model'), 'proxy_init', "must be 'torch' or 'model'")
        need(isinstance(self.common_seed, bool), 'common_seed', 'must be true or false')
        need(0.0 < self.loss_check_frac <= 1.0, 'loss_check_frac', 'must be in (0, 1]')
        need(0 <= self.checkpoint_epoch <= self.epochs, 'checkpoint_epoch', 'must be in 0..epochs')
        need(0.0 <= self.min_acc_ratio <= 1.0, 'min_acc_ratio', 'must be in [0, 1]')
        need(self.workers >= 0, 'workers', 'must be >= 0')
        need(self.eval_timeout_s > 0, 'eval_timeout_s', 'must be > 0')
        need(self.retries >= 0, 'retries', 'must be >= 0')
        for g, kind in self.fault_injection.items():
            if kind not in ('nan', 'raise', 'exit', 'hang'):
                raise ConfigError(f'fault_injection[{g!r}]={kind!r}: must be nan, raise, exit or hang')
        if self.dask_scheduler is not None and not str(self.dask_scheduler).strip():
            raise ConfigError('dask_scheduler is empty')
        if self.space == 'joint':
            need(list(self.archs) == ['deit'], 'archs',
                 "the joint space shapes the DeiT proxy only: archs must be ['deit']")
            need(self.cost == 'flops', 'cost', "the joint space's costs are the analytic parameters and "
                 "MACs at full size: cost must be 'flops'")
        need(self.shape_evaluator in SHAPE_EVALUATORS, 'shape_evaluator',
             f"must be one of {', '.join(SHAPE_EVALUATORS)}")
        if self.shape_evaluator == 'supernet':
            need(self.space == 'joint', 'shape_evaluator', "the supernet scores shapes: it needs space='joint'")
            need(self.rungs == 1 and not self.prescreen and not self.surrogate, 'shape_evaluator',
                 'the supernet evaluator trains once per genome: it takes no rungs, no prescreen and no '
                 'surrogate')
        for text in self.init_genomes:
            if self.space == 'joint':
                _parse_joint(text, SHAPE_SPACES[self.shape_space], 'init_genomes')
            else:
                _parse_genome(text, 'init_genomes')
        return self

    @property
    def rung_epochs(self) -> List[float]:
        """The training budget (epochs, fractional below the last) of each rung, ascending; the
        last is ``epochs``."""
        return [self.epochs / self.eta ** (self.rungs - 1 - r) for r in range(self.rungs)]

    @property
    def n_objectives(self) -> int:
        return len(self.objective_names)

    @property
    def objective_names(self) -> List[str]:
        acc = ([f'neg_acc_{a}' for a in self.archs] if self.acc_objective == 'per_arch'
               else ['neg_acc_mean'])
        if self.space == 'joint':   # full-size parameters (millions) and MACs (G)
            return acc + ['params_M', 'macs_G']
        return acc + [f'cost_{self.cost}']


#: what a config written before a field existed meant by leaving it out, where that differs from
#: the field's default today
LEGACY_VALUES: Dict[str, Any] = {'common_seed': False}


def with_defaults(data: Dict[str, Any]) -> Dict[str, Any]:
    """``data`` (a config dict, e.g. a ``config.json`` written before a field existed) with every
    missing field at the value it had then (:data:`LEGACY_VALUES`, else the default)."""
    out = SearchConfig().to_dict()
    out.update(LEGACY_VALUES)
    out.update(data)
    return out


def _parse_genome(text: str, where: str):
    try:
        return Genome.parse(text)
    except Exception as e:  # noqa: BLE001 - report which text in which field
        raise ConfigError(f'{where}: bad genome text {text!r}: {e}') from e


def _parse_joint(text: str, space, where: str) -> JointGenome:
    try:
        j = JointGenome.parse(text)
        space.check(j.shape)
        return j
    except Exception as e:  # noqa: BLE001 - report which text in which field
        msg = str(e) if isinstance(e, ShapeError) else f'{type(e).__name__}: {e}'
        raise ConfigError(f'{where}: bad joint genome text {text!r}: {msg}') from e


#: named presets; ``default`` is what ``tools/search.py`` runs without arguments (the dataclass
#: defaults on 2 local worker processes); ``tiny`` is the test configuration (seconds per search).
#: The earlier defaults are kept under their names, whole (proxy, architectures, their shapes,
#: budget), so that their fidelity tables (``docs/fidelity/``) can be made again:
#: ``relational`` (the 16x16 relational task, 2 epochs at lr 3e-3, batch 32), ``scenes-v1``
#: (scenes with 4000 training images for 7 epochs in the 2-block DeiT and PVT proxies) and
#: ``scenes-v2`` (the ``scenes-v3`` proxy without common random numbers: one seed per candidate) and
#: ``scenes-v3`` (the default until 2026-12-02: a DeiT of 4 blocks at width 48 instead of 8 at 32).
PRESETS: Dict[str, Dict[str, Any]] = {
    'default': dict(workers=2),
    'scenes-v1': dict(proxy='scenes', archs=['deit', 'pvt'], arch_overrides={}, epochs=7, checkpoint_epoch=2,
                      common_seed=False),
    'scenes-v2': dict(proxy='scenes?train=14000&val=4000', archs=['deit'],
                      arch_overrides=_seed_shape_overrides(), epochs=2, checkpoint_epoch=1,
                      common_seed=False),
    'scenes-v3': dict(proxy='scenes?train=14000&val=4000', archs=['deit'],
                      arch_overrides=_seed_shape_overrides(), epochs=2, checkpoint_epoch=1),
    'relational': dict(proxy='relational', archs=['deit', 'pvt'], arch_overrides={}, epochs=2, batch_size=32,
                       lr=3e-3, checkpoint_epoch=1, common_seed=False),
    'tiny': dict(proxy='relational?train=192&val=64&test=96', epochs=1, batch_size=32, lr=3e-3, pop_size=4,
                 generations=2, checkpoint_epoch=1, archs=['deit', 'pvt'], common_seed=False,
                 arch_overrides={'deit': dict(embed_dim=32, depth=1),
                                 'pvt': dict(embed_dims=(16, 32))}),
    # The joint attention + shape search (``tools/search.py --space joint``): the default proxy
    # (scenes, 14000 training images, 2 epochs, common seeds, rejection) in the DeiT of each
    # candidate's shape from the ``proxy`` shape space, seeded with Trial-105 at the space's centre
    # (JOINT_SEED_SHAPE). 8 + 3 x 8 = 32 candidates and one baseline, at most ~50 s of one core
    # each, on 2 workers: 7.5 min on 2 cores (docs/joint/default/joint.md).
    'joint': dict(space='joint', shape_space='proxy', archs=['deit'], pop_size=8, generations=4, workers=2,
                  arch_overrides=_seed_shape_overrides(),   # the softmax baseline's shape
                  init_genomes=[f'{JOINT_SEED_SHAPE}|{TRIAL_105}']),
    # the joint search's test configuration (seconds): the 'tiny' training in the proxy shape space
    'joint-tiny': dict(space='joint', shape_space='proxy', proxy='relational?train=192&val=64&test=96',
                       epochs=1, batch_size=32, lr=3e-3, pop_size=4, generations=2, checkpoint_epoch=1,
                       archs=['deit'], common_seed=False, init_genomes=[f'{JOINT_SEED_SHAPE}|{TRIAL_105}']),
}


def preset(name: str) -> SearchConfig:
    if name not in PRESETS:
        raise ConfigError(f'unknown preset {name!r}; known: {", ".join(PRESETS)}')
    return SearchConfig(**PRESETS[name]).validate()
