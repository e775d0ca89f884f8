"""The evaluation pipeline of one candidate.

In the search process (cheap, in order):

1. parse the genome (canonical text);
2. static linear-cost check (:func:`attnzero.space.static_check`): ``invalid`` / ``quadratic``;
3. program check (:func:`attnzero.space.check_program`): compile, run, finite output and
   gradients, token mixing, batch independence -- rejected as ``check:<reason>``;
4. evaluation-cache lookup by canonical hash, then by functional-equivalence fingerprint
   (done by the runner, which owns the cache).

In a worker (:func:`training_task`, picklable, deterministic given seed and genome): short proxy
training of each proxy ViT in turn with the rejection protocol; the first rejected architecture
stops the candidate (the later ones are not trained).

``cfg.program_check=False`` skips steps 2-3 and ``cfg.cache=False`` step 4;
``cfg.rejection=False`` trains every candidate for the full budget (the naive search of
:mod:`attnzero.search.efficiency`).

In the joint space (``cfg.space == 'joint'``) a candidate is a
:class:`~attnzero.space.shape.JointGenome` text ``'<shape>|<genome>'``: step 1 also checks that the
shape is a point of ``cfg.shape_space`` (else ``invalid``), steps 2-3 check the attention genome,
the cost is the candidate's parameter count (millions) and MACs at full size (the shape space's
setting, computed analytically), and the DeiT proxy trains at the candidate's shape.
"""
from __future__ import annotations

import hashlib
import math
import time
from typing import Any, Dict, List, Optional, Tuple

import torch

from attnzero.space import Genome, Reason, check_program, static_check
from attnzero.space.shape import SHAPE_SPACES, JointGenome

from .config import SearchConfig
from .proxies import load_proxy
from .train import deterministic_torch, train_proxy

__all__ = ['derive_seed', 'precheck', 'genome_cost', 'training_task', 'baseline_task',
           'objectives', 'REJECTED_ACC', 'candidate_parts']

#: accuracy objective given to a rejected candidate (it is also marked infeasible)
REJECTED_ACC = 0.0


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed from the run seed and the candidate's identity (stable across processes)."""
    text = ':'.join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], 'little') & 0x7FFFFFFF


def candidate_seed(cfg: SearchConfig, key: str, arch: str, index: int = 0) -> int:
    """The training seed of candidate ``key`` (a genome hash) in ``arch``: with
    ``cfg.common_seed`` the run's one seed per architecture (``index``: the fidelity tool's seed
    number; 0 is the search's), otherwise one per candidate."""
    if cfg.common_seed:
        return derive_seed(cfg.seed, 'common', arch, index)
    return derive_seed(cfg.seed, key, arch)


def baseline_seed(cfg: SearchConfig, attn: str, arch: str) -> int:
    """The training seed of the named ``attn`` baseline in ``arch`` (the candidates' common seed
    with ``cfg.common_seed``)."""
    if cfg.common_seed:
        return candidate_seed(cfg, attn, arch)
    return derive_seed(cfg.seed, 'baseline', attn, arch)


def genome_cost(genome, cfg: SearchConfig) -> float:
    """The cost objective's raw value: MFLOPs of the genome at ``cost_tokens`` x ``cost_head_dim``
    (one head, one image), or measured milliseconds of its compiled forward at that size."""
    if cfg.cost == 'flops':
        return float(genome.complexity().flops(cfg.cost_tokens, cfg.cost_head_dim)) / 1e6
    fn = genome.compile()
    with deterministic_torch(cfg.threads), torch.no_grad():
        q, k, v = torch.randn(3, 1, 1, cfg.cost_tokens, cfg.cost_head_dim).unbind(0)
        fn(q, k, v)
        times = []
        for _ in range(5):
            t = time.perf_counter()
            fn(q, k, v)
            times.append(time.perf_counter() - t)
    return 1000.0 * sorted(times)[len(times) // 2]


def candidate_parts(cfg: SearchConfig, text: str) -> Tuple[Optional[str], str]:
    """``(shape text, attention genome text)`` of a candidate: the shape is ``None`` outside the
    joint space, where the candidate is the genome."""
    if cfg.space != 'joint':
        return None, text
    j = JointGenome.parse(text)
    return j.shape.to_string(), j.attention.to_string()


def _parse_candidate(text: str, cfg: SearchConfig, out: Dict[str, Any]) -> Tuple[Optional[Genome], Any]:
    """Step 1: ``(attention genome, shape)`` of ``text`` (the shape ``None`` outside the joint
    space; ``(None, None)`` after setting an ``invalid`` verdict in ``out``); fills ``canonical``
    and ``hash``, and in the joint space ``shape`` (its text)."""
    if cfg.space != 'joint':
        try:
            g = Genome.parse(text)
        except Exception as e:  # noqa: BLE001
            out.update(reason='invalid', message=f'unparsable genome: {e}')
            return None, None
        out['canonical'], out['hash'] = g.to_string(), g.hash
        return g, None
    try:
        j = JointGenome.parse(text)
    except Exception as e:  # noqa: BLE001
        out.update(reason='invalid', message=f'unparsable joint genome {text!r}: {e}')
        return None, None
    out['canonical'], out['hash'], out['shape'] = j.to_string(), j.hash, j.shape.to_string()
    space = SHAPE_SPACES[cfg.shape_space]
    why = space.problem(j.shape)
    if why:
        out.update(reason='invalid', message=f'shape {j.shape.to_string()!r} is not in the {space.name!r} '
                                             f'shape space: {why}')
        return None, None
    return j.attention, j.shape


def _cost(g: Genome, shape: Any, cfg: SearchConfig, out: Dict[str, Any]) -> None:
    """The cost objective's raw value into ``out['cost']``; in the joint space the full-size
    parameter count (``params``; ``cost`` is it in millions) and MACs (``macs``) of ``shape`` with
    ``g``. Raises what the cost analysis raises."""
    if cfg.space != 'joint':
        out['cost'] = genome_cost(g, cfg)
        return
    space = SHAPE_SPACES[cfg.shape_space]
    out['params'] = space.params(shape, g)
    out['macs'] = float(space.macs(shape, g))
    out['cost'] = out['params'] / 1e6


def _precheck(text: str, cfg: SearchConfig) -> Dict[str, Any]:
    t0 = time.perf_counter()
    out: Dict[str, Any] = dict(ok=False, reason='', message='', cost=None, canonical=text, hash=None)
    if cfg.space == 'joint':
        out.update(shape=None, params=None, macs=None)
    g, shape = _parse_candidate(text, cfg, out)
    if g is None:
        out['seconds'] = time.perf_counter() - t0
        return out
    if not cfg.program_check:
        try:
            _cost(g, shape, cfg, out)
        except Exception:  # noqa: BLE001 - no check: the cost of a genome that cannot run is unknown
            out['cost'] = None
        out.update(ok=True, seconds=time.perf_counter() - t0)
        return out
    try:
        reason, msg = static_check(g, allow_quadratic=cfg.allow_quadratic)
    except Exception as e:  # noqa: BLE001
        reason, msg = Reason.INVALID, f'static analysis failed: {type(e).__name__}: {e}'
    if reason is not Reason.OK:
        out.update(reason=reason.value, message=msg, seconds=time.perf_counter() - t0)
        return out
    try:
        _cost(g, shape, cfg, out)
    except Exception as e:  # noqa: BLE001
        out.update(reason='invalid', message=f'cost analysis failed: {type(e).__name__}: {e}',
                   seconds=time.perf_counter() - t0)
        return out
    res = check_program(g, allow_quadratic=cfg.allow_quadratic)
    if not res.ok:
        out.update(reason=f'check:{res.reason.value}', message=res.message,
                   seconds=time.perf_counter() - t0)
        return out
    out.update(ok=True, seconds=time.perf_counter() - t0)
    return out


def precheck(text: str, cfg: SearchConfig) -> Dict[str, Any]:
    """Steps 1-3 of the pipeline. Returns ``{'ok', 'reason', 'message', 'seconds', 'cpu_seconds',
    'cost', 'canonical', 'hash'}`` (in the joint space also ``shape``, ``params`` and ``macs``);
    never raises for a bad genome. ``cpu_seconds`` is the CPU time
    of the whole process (the check runs in the search process, at torch's thread count there).

    With ``cfg.program_check`` off only step 1 runs, and the cost objective is computed where it
    can be (``cost=None`` where it cannot): every parsable genome is ``ok`` (it goes to training).
    """
    c0 = time.process_time()
    out = _precheck(text, cfg)
    out['cpu_seconds'] = time.process_time() - c0
    return out


def _load(cfg_dict: Dict[str, Any]):
    cfg = SearchConfig.from_dict(cfg_dict)
    return cfg, load_proxy(cfg.proxy)


def training_task(payload: Dict[str, Any]) -> Dict[str, Any]:
    """Worker entry point: train ``payload['genome']`` in every proxy architecture.

    ``payload``: ``genome`` (canonical text), ``hash``, ``config`` (dict), ``baselines``
    (``{arch: checkpoint accuracy}``), ``fault`` (test hook or ``None``), and for a
    successive-halving rung ``rung``: ``{'stop_epochs': pause after these epochs of the full
    schedule (None: to the end), 'resume': {arch: state bytes} or None}``. (The joint space's
    ``shape_evaluator='supernet'`` scores candidates with
    :func:`attnzero.search.supernet.supernet_task` instead.)
    Returns ``status``, ``reason``, ``message``, ``per_arch`` (list of :func:`train_proxy`
    dicts, without their training states), ``paused`` and ``states`` (``{arch: bytes}``: a rung's
    result, to resume from), ``seconds``, ``cpu_seconds`` (CPU time of the process: one evaluation per process
    in-process or on local workers; on a Dask worker running several tasks at once it includes
    theirs), ``gflops`` (``None`` if the FLOPs of an architecture are unknown), ``samples``.
    """
    t0 = time.perf_counter()
    c0 = time.process_time()
    cfg, data = _load(payload['config'])
    per_arch: List[Dict[str, Any]] = []
    status, reason, message = 'ok', '', ''
    shape, genome = candidate_parts(cfg, payload['genome'])
    rung = payload.get('rung') or {}
    resume = rung.get('resume') or {}
    states: Dict[str, bytes] = {}
    for arch in cfg.archs:
        seed = candidate_seed(cfg, payload['hash'], arch)
        r = train_proxy(arch, 'attnzero', genome, cfg, data, seed,
                        baseline_ckpt_acc=(payload.get('baselines') or {}).get(arch),
                        reject=cfg.rejection, fault=payload.get('fault'), shape=shape,
                        stop_epochs=rung.get('stop_epochs'), resume=resume.get(arch))
        if 'state' in r:
            states[arch] = r.pop('state')
        per_arch.append(r)
        if r['status'] != 'ok':
            status, reason, message = 'rejected', r['reason'], f'{arch}: {r["message"]}'
            break
    out = dict(status=status, reason=reason, message=message, per_arch=per_arch,
               seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
               gflops=_total(r['gflops'] for r in per_arch),
               samples=sum(r['samples'] for r in per_arch))
    if status == 'ok' and states:
        out.update(paused=True, states=states)
    return out


def _total(values) -> Optional[float]:
    """Sum, or ``None`` if any value is unknown (``None``): a partial sum would understate."""
    values = list(values)
    return None if any(v is None for v in values) else float(sum(values))


def baseline_task(payload: Dict[str, Any]) -> Dict[str, Any]:
    """Worker entry point: full-budget training of a named attention (no rejection) in one
    architecture. ``payload``: ``attn``, ``arch``, ``config``."""
    cfg, data = _load(payload['config'])
    seed = baseline_seed(cfg, payload['attn'], payload['arch'])
    return train_proxy(payload['arch'], payload['attn'], None, cfg, data, seed, reject=False)


def objectives(cfg: SearchConfig, status: str, accs: Dict[str, float], cost: Optional[float],
               macs: Optional[float] = None) -> Tuple[List[float], List[float]]:
    """``(F, G)`` for pymoo: minimised negative accuracies and ``log10`` cost; ``G > 0`` marks a
    rejected (infeasible) candidate. In the joint space the costs are ``cost`` (full-size
    parameters in millions) and ``macs`` (full-size MACs) in G, as they are (an unknown one:
    ``1e12``)."""
    ok = status == 'ok'
    if cfg.acc_objective == 'per_arch':
        f = [-(accs.get(a, REJECTED_ACC) if ok else REJECTED_ACC) for a in cfg.archs]
    else:
        f = [-(sum(accs[a] for a in cfg.archs) / len(cfg.archs) if ok else REJECTED_ACC)]
    def known(v: Optional[float]) -> bool:
        return v is not None and math.isfinite(v) and v > 0

    if cfg.space == 'joint':
        f.append(cost if known(cost) else 1e12)
        f.append(macs / 1e9 if known(macs) else 1e12)
        return f, [0.0 if ok else 1.0]
    f.append(math.log10(cost if known(cost) else 1e12))
    return f, [0.0 if ok else 1.0]
