"""Fixed-length features of a genome, for accuracy surrogates (the bench's
:class:`attnzero.bench.Surrogate` and the search's online one, :mod:`attnzero.search.surrogate`).

Features (all from the genome text, nothing trained): graph one-hot; binary operator of each node
position; for each edge *source* (``q``, ``k``, ``v``, ``b0``..``b2``, ``e5``) the count of each
unary operator on edges from that source; the overall count of each unary operator; unary list
lengths per edge position; ``log10`` static FLOPs at the reference size; original-operators-only and
batch-global flags.

Probe features (:func:`probe_features`, the feature set ``'syntax+probe'``): what the genome's
attention *does* on one fixed input, measured with the reference evaluator in float64. The syntax
features cannot tell two genomes apart that are written differently but behave alike, or alike but
behave differently (an operator that saturates, a branch that cancels); the probe can. On the
Attn-Bench-101 v2 checkpoint (1056 genomes at the rung, 264 at the full budget; 3 x 5-fold CV)
adding them raised the surrogate's Kendall tau from 0.38 to 0.48 at the rung and from 0.30 to 0.45
at the full budget, and from 0.18 to 0.23 on v1 (``tools/surrogate_cv.py``,
``docs/bench/surrogate-cv/surrogate_cv.md``).

Gradient features (:func:`gradient_features`, the feature set ``'syntax+probe+grad'``): on the same
probe, how strongly a learning signal at the attention's output reaches q, k and v -- the gradient
of a fixed random readout of the output (and of its direction alone) with respect to each input.
An attention whose output cannot steer its q or k is slow to learn, whatever it computes.
On the finished v2 (2016 genomes at the rung, 504 at the full budget; 3 x 5-fold CV, the same
folds) adding them to the probe features raised the tau from 0.481 to 0.536 at the rung and
from 0.421 to 0.442 at the full budget; on v1 from 0.234 to 0.239 (within its noise).
"""
from __future__ import annotations

import functools
import math
from typing import Any, List, Tuple

import numpy as np
import torch

from .genome import Genome
from .graphs import GRAPH_NAMES, GRAPHS
from .ops import BINARY_OPS, UNARY_OPS

__all__ = ['genome_features', 'feature_names', 'probe_features', 'gradient_features', 'PROBE_FEATURES',
           'GRAD_FEATURES', 'FEATURE_SETS', 'check_feature_set', 'regressor']

_SOURCES = ('q', 'k', 'v', 'b0', 'b1', 'b2', 'e5')
_MAX_EDGES = 8
_MAX_NODES = 4


#: the feature sets a surrogate can use: the genome's text alone, with its probe features, or with
#: its probe and gradient features
FEATURE_SETS = ('syntax', 'syntax+probe', 'syntax+probe+grad')

#: the probe features, in order (see :func:`probe_features`)
PROBE_FEATURES = ('probe_ok', 'cos_softmax', 'cos_cluster_mean', 'cos_v', 'log10_scale', 'sens_q', 'sens_k',
                  'sens_qk_scale', 'v_nonlinearity', 'effective_rank', 'token_spread')

#: the gradient features, in order (see :func:`gradient_features`)
GRAD_FEATURES = ('grad_ok', 'gain_q', 'gain_k', 'gain_v', 'dir_gain_q', 'dir_gain_k', 'dir_gain_v')


def check_feature_set(features: str) -> None:
    """A one-line ``ValueError`` naming ``features`` unless it is one of :data:`FEATURE_SETS`."""
    if features not in FEATURE_SETS:
        raise ValueError(f'unknown feature set {features!r}; known: {", ".join(FEATURE_SETS)}')


def feature_names(features: str = 'syntax') -> List[str]:
    """The names of the columns of :func:`genome_features` for the feature set ``features``."""
    check_feature_set(features)
    return _syntax_names() + [f'{group}:{n}' for group, names, _ in _groups(features) for n in names]


def _syntax_names() -> List[str]:
    names = [f'graph={g}' for g in GRAPH_NAMES]
    names += [f'node{j}={op.name}' for j in range(_MAX_NODES) for op in BINARY_OPS]
    names += [f'from_{s}:{op.name}' for s in _SOURCES for op in UNARY_OPS]
    names += [f'count:{op.name}' for op in UNARY_OPS]
    names += [f'len_edge{i}' for i in range(_MAX_EDGES)]
    names += ['n_unary', 'log10_flops', 'is_original', 'batch_global']
    return names


def genome_features(genome, ref_tokens: int = 3136, ref_head_dim: int = 32,
                    features: str = 'syntax') -> np.ndarray:
    """The feature vector of one genome (see the module docstring); ``features='syntax+probe'``
    appends :func:`probe_features`, ``'syntax+probe+grad'`` those and :func:`gradient_features`."""
    check_feature_set(features)
    return np.concatenate([_syntax_features(genome, ref_tokens, ref_head_dim)]
                          + [fn(genome) for _, _, fn in _groups(features)])


def _groups(features: str) -> List[Tuple[str, Tuple[str, ...], Any]]:
    """``(name, column names, function)`` of each group a feature set adds to the syntax
    features, in column order."""
    parts = features.split('+')
    return [g for g in (('probe', PROBE_FEATURES, probe_features), ('grad', GRAD_FEATURES, gradient_features))
            if g[0] in parts]


def _syntax_features(genome, ref_tokens: int, ref_head_dim: int) -> np.ndarray:
    nu, nb = len(UNARY_OPS), len(BINARY_OPS)
    parts: List[np.ndarray] = []
    g = np.zeros(len(GRAPH_NAMES))
    g[list(GRAPH_NAMES).index(genome.graph)] = 1
    parts.append(g)
    b = np.zeros((_MAX_NODES, nb))
    for j, op in enumerate(genome.binary):
        b[j, op] = 1
    parts.append(b.ravel())
    src = np.zeros((len(_SOURCES), nu))
    cnt = np.zeros(nu)
    lens = np.zeros(_MAX_EDGES)
    sources = GRAPHS[genome.graph].sources
    for i, lst in enumerate(genome.unary):
        s = _SOURCES.index(sources[i]) if sources[i] in _SOURCES else len(_SOURCES) - 1
        for u in lst:
            src[s, u] += 1
            cnt[u] += 1
        lens[i] = len(lst)
    parts += [src.ravel(), cnt, lens]
    cx = genome.complexity()
    flops = cx.flops(ref_tokens, ref_head_dim) if cx.flops_poly is not None else 0.0
    parts.append(np.array([lens.sum(), math.log10(max(float(flops), 1.0)),
                           float(genome.is_original), float(genome.uses_batch_global)]))
    return np.concatenate(parts)


def regressor(seed: int = 0, **params):
    """The score model on these features, shared by the bench's surrogate
    (:class:`attnzero.bench.Surrogate`) and the search's prior (:mod:`attnzero.search.prior`): a
    seeded :class:`sklearn.ensemble.GradientBoostingRegressor` (200 trees of depth 3, learning rate
    0.05, subsample 0.8, at least 3 samples per leaf), ``params`` overriding those. scikit-learn is
    imported here, on use."""
    from sklearn.ensemble import GradientBoostingRegressor

    kw = dict(n_estimators=200, max_depth=3, learning_rate=0.05, subsample=0.8, min_samples_leaf=3,
              random_state=seed)
    kw.update(params)
    return GradientBoostingRegressor(**kw)


# ----------------------------------------------------------------------------- probe features
#: probe sizes: batch, tokens, embedding width, head dim, clusters of tokens
_PROBE_B, _PROBE_N, _PROBE_D, _PROBE_HD, _PROBE_C = 2, 64, 32, 16, 4
_PROBE_SEED = 20261203


@functools.lru_cache(maxsize=1)
def _probe_inputs() -> Tuple[torch.Tensor, ...]:
    """Tokens in 4 clusters (a layer-normed embedding), projected to one head's q, k, v by random
    matrices; independent noise for q and k; the softmax-attention output and the within-cluster
    mean of v as reference outputs. Float64, fixed seed."""
    g = torch.Generator().manual_seed(_PROBE_SEED)
    B, N, D, d, C = _PROBE_B, _PROBE_N, _PROBE_D, _PROBE_HD, _PROBE_C
    centres = torch.randn(B, C, D, generator=g, dtype=torch.float64) * 1.5
    labels = torch.randint(0, C, (B, N), generator=g)
    x = centres[torch.arange(B)[:, None], labels] + torch.randn(B, N, D, generator=g, dtype=torch.float64)
    x = (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)
    q, k, v = ((x @ (torch.randn(D, d, generator=g, dtype=torch.float64) / math.sqrt(D)))[:, None]
               for _ in range(3))
    q_noise = torch.randn(q.shape, generator=g, dtype=torch.float64)
    k_noise = torch.randn(k.shape, generator=g, dtype=torch.float64)
    softmax = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), -1) @ v
    same = (labels[:, :, None] == labels[:, None, :]).to(torch.float64)[:, None]
    cluster_mean = (same @ v) / same.sum(-1, keepdim=True)
    return q, k, v, q_noise, k_noise, softmax, cluster_mean


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two outputs after removing each one's mean over tokens."""
    a = a - a.mean(-2, keepdim=True)
    b = b - b.mean(-2, keepdim=True)
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-300))


#: relative changes below this are 0: what an invariant attention gives there is rounding error of
#: the float64 evaluation (1e-17 to 1e-10, different on another CPU or BLAS) or the trace of an
#: epsilon inside a normalisation, and ranking genomes by it made the feature, and every table built
#: on it, depend on the machine
REL_FLOOR = 1e-8


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|a - b| / |b|``, 0 below :data:`REL_FLOOR`."""
    r = float((a - b).norm() / b.norm().clamp_min(1e-300))
    return 0.0 if r < REL_FLOOR else r


#: the largest magnitude of a feature: a ratio of a near-zero output can be finite in float64 yet
#: overflow the float32 that scikit-learn's trees cast to
FEATURE_LIMIT = 1e30


def _round(x: float) -> float:
    """5 significant digits: the features do not depend on the last bits of a platform's float64;
    clipped to :data:`FEATURE_LIMIT`."""
    if not math.isfinite(x):
        return 0.0
    return float(f'{min(max(x, -FEATURE_LIMIT), FEATURE_LIMIT):.5g}')


def probe_features(genome) -> np.ndarray:
    """What the genome's attention does on one fixed probe input (:data:`PROBE_FEATURES`): its
    output's centred cosine similarity to softmax attention's, to the within-cluster mean of v and
    to v itself; the log10 ratio of its output's scale to v's; how much the output changes when q
    (``sens_q``) or k (``sens_k``) is replaced by noise, or when q and k are doubled; how far it is
    from homogeneous in v (``|f(2v) - 2 f(v)| / |2 f(v)|``); the effective rank of the centred
    output (exp of the entropy of its normalised singular values); its spread over tokens relative
    to its overall spread. ``probe_ok`` is 0 (and every other feature 0) for a genome whose output
    on the probe is not finite or that fails to run.

    Reference evaluator in float64, values rounded to 5 significant digits and the four relative
    changes (``sens_*``, ``v_nonlinearity``) set to 0 below :data:`REL_FLOOR`, so that they are the
    same on every machine; cached by the genome's canonical text (about 8 ms each)."""
    return np.array(_probe_cached(genome.to_string()))


@functools.lru_cache(maxsize=1 << 16)
def _probe_cached(text: str) -> Tuple[float, ...]:
    q, k, v, qn, kn, softmax, cluster_mean = _probe_inputs()
    n = len(PROBE_FEATURES)
    try:
        f = Genome.parse(text).compile(fast=False)
        with torch.no_grad():
            out = f(q, k, v)
            outs = [f(qn, k, v), f(q, kn, v), f(2 * q, 2 * k, v), f(q, k, 2 * v)]
    except Exception:  # noqa: BLE001 - a genome that cannot run on the probe is a feature value
        return (0.0,) * n
    if not all(bool(torch.isfinite(o).all()) for o in [out] + outs):
        return (0.0,) * n
    centred = out[:, 0] - out[:, 0].mean(-2, keepdim=True)
    sv = torch.linalg.svdvals(centred)
    p = sv / sv.sum(-1, keepdim=True).clamp_min(1e-300)
    erank = float(torch.exp(-(p * torch.log(p.clamp_min(1e-300))).sum(-1)).mean())
    vals = [1.0, _cos(out, softmax), _cos(out, cluster_mean), _cos(out, v),
            math.log10(max(float(out.std()), 1e-30) / float(v.std())),
            _rel(outs[0], out), _rel(outs[1], out), _rel(outs[2], out), _rel(outs[3], 2 * out), erank,
            float(out.std(-2).mean() / out.std().clamp_min(1e-300))]
    return tuple(_round(x) for x in vals)


# ----------------------------------------------------------------------------- gradient features
@functools.lru_cache(maxsize=1)
def _grad_readout() -> torch.Tensor:
    """A fixed random readout of the probe's output, of unit norm (its own seed: the probe's inputs
    are those of :func:`_probe_inputs`, unchanged)."""
    q = _probe_inputs()[0]
    r = torch.randn(q.shape, generator=torch.Generator().manual_seed(_PROBE_SEED + 1), dtype=torch.float64)
    return r / r.norm()


def _gains(f) -> List[float]:
    """``log10(|dL/dx| |x| / s)`` for x = q, k, v and two readouts of one forward pass: ``L = <out, r>``
    with ``s = |out|``, then ``L = <c / |c|, r>`` of the centred output ``c`` with ``s = 1`` (the
    floor, -12, for all three where the output is the same for every token, to 1e-9 of its norm: its
    direction is not defined and nothing steers it)."""
    q0, k0, v0 = _probe_inputs()[:3]
    r = _grad_readout()
    x = [t.clone().requires_grad_(True) for t in (q0, k0, v0)]
    with torch.enable_grad():
        out = f(*x)
        norm = float(out.detach().norm())
        if not (math.isfinite(norm) and norm > 0):
            raise FloatingPointError('zero or non-finite output on the probe')
        c = out - out.mean(-2, keepdim=True)
        readouts = [((out * r).sum(), norm)]
        if float(c.detach().norm()) > 1e-9 * norm:  # (not rounding error alone)
            readouts.append(((c / c.norm() * r).sum(), 1.0))
        vals = []
        for i, (loss, scale) in enumerate(readouts):
            grads = torch.autograd.grad(loss, x, allow_unused=True, retain_graph=i + 1 < len(readouts))
            for g, t in zip(grads, (q0, k0, v0)):
                gn = float(g.norm()) if g is not None else 0.0
                if not math.isfinite(gn):
                    raise FloatingPointError('non-finite gradient on the probe')
                vals.append(math.log10(max(gn * float(t.norm()) / scale, 1e-12)))
    return vals + [-12.0] * (len(GRAD_FEATURES) - 1 - len(vals))


def gradient_features(genome) -> np.ndarray:
    """How a learning signal at the genome's output reaches its inputs, on the probe input of
    :func:`probe_features` (:data:`GRAD_FEATURES`): ``gain_q``, ``gain_k``, ``gain_v`` are
    ``log10(|dL/dx| |x| / |out|)`` for a fixed random unit readout ``L = <out, r>`` -- the
    elasticity of the readout in each input, -12 (the floor) for an attention that ignores x;
    ``dir_gain_*`` the same for the readout of the output's centred direction ``c / |c|``
    (``|dL/dx| |x|``): what steers the output's pattern rather than its scale (-12 for an output
    that is the same for every token).
    ``grad_ok`` is 0 (and every other feature 0) for a genome whose output or gradients on the
    probe are not finite or that fails to run.

    Reference evaluator in float64, rounded to 5 significant digits; cached by canonical text
    (about 4 ms each). Torch's grad mode and random state are left as they were."""
    return np.array(_grad_cached(genome.to_string()))


@functools.lru_cache(maxsize=1 << 16)
def _grad_cached(text: str) -> Tuple[float, ...]:
    try:
        f = Genome.parse(text).compile(fast=False)
        vals = [1.0] + _gains(f)
    except Exception:  # noqa: BLE001 - a genome that cannot run or differentiate is a feature value
        return (0.0,) * len(GRAD_FEATURES)
    return tuple(_round(x) for x in vals)
