"""Token-masked evaluation of a genome: the program restricted to a weighted subset of tokens
(DynamicViT token pruning, issue 20).

A mask gives every token of the ``N``-token layout a weight ``w[b, n]`` in ``[0, 1]`` (0: the token
is dropped). The masked program is the genome in which **every operation that mixes values along a
token axis only sees the kept tokens**:

* contractions over a token axis (``matmul``, ``einsum1..4``) weigh the terms: ``sum_n w_n a_n b_n``;
* reductions along a token axis (``softmax``, ``logsoftmax``, the L1/L2 norms, ``axis_sum1/2``,
  ``strange_op``, ``focus3``, the distances and cosine similarities) run over the kept tokens;
* statistics over a whole tensor (``normalize``, ``min_max_normalize`` and their per-sample
  variants) are weighted means/variances and min/max over the kept entries; an entry of a
  ``token x token`` tensor counts with weight ``w_i * w_j``;
* ``scale`` on a token axis uses the number of kept tokens (``sum_n w_n``).

Elementwise operators, views and broadcasts need nothing. With 0/1 weights the result at a kept
token equals the genome run on the kept tokens alone (hard pruning at inference), for every
sample keeping the same number of tokens (batch-global statistics then see the same entries).
This is tested over genomes sampled from the space in ``tests/test_masked_genome.py``. Fractional
weights (the soft part of a straight-through estimator) interpolate smoothly; dropped tokens
still get gradients through every weighted contraction.

Which axes are token axes is decided statically from the symbolic shapes of the analysis
(:mod:`attnzero.space.cost`): a dimension equal to ``N``. A genome whose intermediates have a
dimension that mixes tokens with something else (``ones_aug`` or ``cat`` along a token axis:
``N + 1``, ``2N``) has no masked form; :func:`mask_problem` names the operator. Keys and values must
have the queries' tokens (no spatial reduction).

The masked evaluator is the reference evaluator (every operator out-of-place) plus the weights; it
runs where a mask is given in training. Hard-pruned inference runs the ordinary compiled program
on the kept tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .cost import analyse
from .graphs import GRAPHS, GenomeProtocol, evaluate
from .ops import BINARY_OPS, EPS, UNARY_OPS
from .symbolic import SB, SD, SH, SN, Shape, fmt_shape

__all__ = ['MaskPlan', 'mask_plan', 'mask_problem', 'run_masked', 'MaskUnsupportedError']

#: operators that act on every element (or only move/insert/expand dims): no weights needed
_ELEMENTWISE_UNARY = frozenset({
    'no_op', 'transpose', 'log', 'abslog', 'abs', 'softsign', 'invert', 'sigmoid', 'sqrt', 'revert',
    'sign', 'elu', 'unsqz1', 'relu', 'exp', 'unsqz2', 'repeat', 'sigmoid_1_reverse', 'repeat_d',
    'relu2', 'softplus', 'silu', 'ones_aug', 'homog_div'})
_ELEMENTWISE_BINARY = frozenset({'sum', 'product', 'cat', 'first', 'second'})
_BINARY_FN = {op.name: op.fn for op in BINARY_OPS}


class MaskUnsupportedError(ValueError):
    """The genome has no token-masked form (an intermediate mixes a token axis with channels)."""


TokenAxes = Tuple[int, ...]


@dataclass(frozen=True)
class MaskPlan:
    """The token axes of every operator's inputs, fixed by the static analysis.

    Attributes:
        unary: ``unary[i][p]``: token axes of the input of the ``p``-th operator of edge ``i``.
        binary: ``binary[j]``: ``(axes of a, axes of b, axes of the broadcast of a and b)``.
        variants: the branch of every binary operator (as :class:`~attnzero.space.cost.Complexity`).
    """

    unary: Tuple[Tuple[TokenAxes, ...], ...]
    binary: Tuple[Tuple[TokenAxes, TokenAxes, TokenAxes], ...]
    variants: Tuple[int, ...]


def _axes(s: Shape, where: str) -> TokenAxes:
    for x in s:
        if x.depends_on_tokens() and x != SN:
            raise MaskUnsupportedError(f'{where} has a dimension {x} that mixes tokens with other '
                                       f'sizes ({fmt_shape(s)}): no token mask applies to it')
    return tuple(i for i, x in enumerate(s) if x == SN)


def _broadcast_shape(a: Shape, b: Shape) -> Shape:
    """The broadcast of ``a`` and ``b`` where they broadcast (``first``/``second`` take any two
    shapes: a mismatch keeps ``b``'s dim, whose token axes are checked on their own)."""
    n = max(len(a), len(b))
    a, b = (None,) * (n - len(a)) + tuple(a), (None,) * (n - len(b)) + tuple(b)
    return tuple(x if y is None else y if x is None or x.is_one else x for x, y in zip(a, b))


@lru_cache(maxsize=4096)
def mask_plan(genome: GenomeProtocol) -> MaskPlan:
    """The :class:`MaskPlan` of ``genome`` (cached).

    Raises:
        MaskUnsupportedError: the genome is invalid, or one of its intermediates has a dimension
            that depends on the token count without being it (the operator is named).
    """
    cx = analyse(genome, False)
    if cx.kind == 'invalid':
        raise MaskUnsupportedError(f'{cx}')
    graph = GRAPHS[genome.graph]
    unary: Dict[int, Tuple[TokenAxes, ...]] = {}
    binary: Dict[int, Tuple[TokenAxes, TokenAxes, TokenAxes]] = {}

    def edge_fn(i: int, s: Shape) -> Shape:
        axes = []
        for p, u in enumerate(genome.unary[i]):
            op = UNARY_OPS[u]
            axes.append(_axes(s, f'the input of {op.name} (edge {i}, item {p})'))
            s = op.shape(s)
            _axes(s, f'the output of {op.name} (edge {i}, item {p})')
        unary[i] = tuple(axes)
        return s

    def node_fn(j: int, a: Shape, b: Shape) -> Shape:
        op = BINARY_OPS[genome.binary[j]]
        out, _ = op.shape(a, b)
        where = f'{op.name} (node {j})'
        binary[j] = (_axes(a, f'the first input of {where}'), _axes(b, f'the second input of {where}'),
                     _axes(_broadcast_shape(a, b), f'the inputs of {where}'))
        _axes(out, f'the output of {where}')
        return out

    x = (SB, SH, SN, SD)
    evaluate(graph, {'q': x, 'k': x, 'v': x}, edge_fn, node_fn)
    return MaskPlan(tuple(unary.get(i, ()) for i in range(graph.n_unary)),
                    tuple(binary[j] for j in range(graph.n_binary)), cx.variants)


def mask_problem(genome: GenomeProtocol) -> Optional[str]:
    """Why ``genome`` cannot run with a token mask, in one line; ``None`` if it can."""
    try:
        mask_plan(genome)
    except MaskUnsupportedError as e:
        return str(e)
    return None


# ------------------------------------------------------------------------------------------
# weights
# ------------------------------------------------------------------------------------------
def _w(w: Tensor, rank: int, axis: int) -> Tensor:
    """``w`` ``(B, N)`` viewed to broadcast along ``axis`` of a rank-``rank`` tensor."""
    shape = [w.shape[0]] + [1] * (rank - 1)
    shape[axis % rank] = w.shape[1]
    return w.view(shape)


def _weights(w: Tensor, rank: int, axes: TokenAxes) -> Optional[Tensor]:
    """Product of the token weights over ``axes`` (``w_i * w_j`` on a token x token tensor)."""
    out = None
    for a in axes:
        t = _w(w, rank, a)
        out = t if out is None else out * t
    return out


def _weigh(x: Tensor, W: Tensor) -> Tensor:
    """``x * W``, with the entries of weight 0 that are not finite counted as 0: a dropped token may
    hold a value the kept ones never produce (``sqrt`` of a number below the kept minimum), which
    must not turn a weighted sum into NaN. Finite entries of weight 0 keep their gradient to ``W``
    (a dropped token's gradient, as in the zoo kernels' ``TokenMask.weigh``)."""
    return torch.where((W > 0) | torch.isfinite(x), x, 0.0) * W


def _last(w: Tensor, x: Tensor, axes: TokenAxes, dim: int = -1) -> Optional[Tensor]:
    """The weights along ``dim`` of ``x`` if it is a token axis, else ``None``."""
    return _w(w, x.dim(), dim) if dim % x.dim() in axes else None


def _weighted_stats(x: Tensor, W: Tensor, dims: Tuple[int, ...], unbiased: bool) -> Tuple[Tensor, Tensor]:
    cnt = W.expand_as(x).sum(dim=dims, keepdim=True)
    mean = _weigh(x, W).sum(dim=dims, keepdim=True) / cnt
    var = _weigh((x - mean) ** 2, W).sum(dim=dims, keepdim=True) / (cnt - 1 if unbiased else cnt)
    return mean, var


def _kept_minmax(x: Tensor, W: Tensor, dims: Tuple[int, ...]) -> Tuple[Tensor, Tensor]:
    keep = (W > 0).expand_as(x)
    lo = x.masked_fill(~keep, float('inf')).amin(dim=dims, keepdim=True)
    hi = x.masked_fill(~keep, float('-inf')).amax(dim=dims, keepdim=True)
    return lo, hi


def _unary(name: str, x: Tensor, w: Tensor, axes: TokenAxes) -> Optional[Tensor]:
    """The masked form of unary ``name`` on ``x`` (token ``axes``), or ``None`` when the plain
    operator already is its masked form."""
    if name in _ELEMENTWISE_UNARY or not axes:
        return None
    wl = _last(w, x, axes)
    if name in ('normalize', 'min_max_normalize', 'normalize_ps', 'min_max_normalize_ps'):
        W = _weights(w, x.dim(), axes)
        dims = tuple(range(x.dim())) if name in ('normalize', 'min_max_normalize') else tuple(range(1, x.dim()))
        if name.startswith('min_max'):
            lo, hi = _kept_minmax(x, W, dims)
            return (x - lo) / (hi - lo + (1e-9 if name == 'min_max_normalize' else EPS))
        mean, var = _weighted_stats(x, W, dims, unbiased=name == 'normalize')
        if name == 'normalize':
            y = (x - mean) / var.sqrt()
            return torch.where(torch.isnan(y), torch.zeros_like(y), y)
        return (x - mean) / torch.sqrt(var + EPS)
    if name == 'axis_sum1':
        w2 = _last(w, x, axes, 2)
        return None if w2 is None else _weigh(x, w2).sum(dim=2)
    if name == 'l2_norm':
        w2 = _last(w, x, axes, -2)
        return None if w2 is None else x / _weigh(x, w2).norm(dim=-2, keepdim=True).clamp_min(1e-12)
    if wl is None:   # the remaining operators act along the last dim only
        return None
    if name == 'scale':
        return x * wl.sum(dim=-1, keepdim=True).pow(-0.5)
    if name == 'softmax':
        m = x.masked_fill(wl <= 0, float('-inf')).amax(dim=-1, keepdim=True).detach()
        e = _weigh(torch.exp((x - m).clamp_max(0)), wl)
        return e / e.sum(dim=-1, keepdim=True)
    if name == 'logsoftmax':
        m = x.masked_fill(wl <= 0, float('-inf')).amax(dim=-1, keepdim=True).detach()
        return x - m - torch.log(_weigh(torch.exp((x - m).clamp_max(0)), wl).sum(dim=-1, keepdim=True))
    if name == 'axis_sum2':
        return _weigh(x, wl).sum(dim=-1)
    if name == 'l2norm_last':
        return x / _weigh(x, wl).norm(dim=-1, keepdim=True).clamp_min(1e-12)
    if name == 'strange_op':
        return x / _weigh(x, wl).sum(dim=-1, keepdim=True)
    if name == 'l1norm_last':
        return x / (_weigh(x.abs(), wl).sum(dim=-1, keepdim=True) + EPS)
    if name == 'focus3':
        r = torch.relu(x)
        r3 = r ** 3
        return r3 * (_weigh(r, wl).norm(dim=-1, keepdim=True) / (_weigh(r3, wl).norm(dim=-1, keepdim=True) + EPS))
    raise MaskUnsupportedError(f'no masked form of unary operator {name!r}')  # pragma: no cover


def _binary(name: str, a: Tensor, b: Tensor, variant: int, w: Tensor,
            plan: Tuple[TokenAxes, TokenAxes, TokenAxes]) -> Optional[Tensor]:
    """The masked form of binary ``name`` (``None``: the plain operator is its masked form)."""
    a_axes, _, ab_axes = plan
    if name in _ELEMENTWISE_BINARY:
        return None
    if name == 'cosine_similarity':   # the reference's similarity of A with itself
        if a.dim() - 1 not in a_axes:
            return None
        wa = _weigh(a, _w(w, a.dim(), -1))
        return F.cosine_similarity(wa, wa, dim=-1)
    if name in ('pairwise_distance', 'cosine_sim'):
        rank = max(a.dim(), b.dim())
        if rank - 1 not in ab_axes:
            return None
        wl = _w(w, rank, -1)
        if name == 'pairwise_distance':
            return torch.linalg.vector_norm(_weigh(a - b + 1e-6, wl), ord=2, dim=-1)
        a, b = torch.broadcast_tensors(a, b)
        return F.cosine_similarity(_weigh(a, wl), _weigh(b, wl), dim=-1, eps=EPS)
    # contractions: weigh the first operand along the contracted dim
    if name == 'matmul':
        dim, bdim = a.dim() - 1, b.dim() - 2
    elif name in ('einsum1', 'einsum2'):
        dim = bdim = 2 if variant == 0 else 3
    elif name == 'einsum3':        # 'bnsd,bnd->bns'
        dim, bdim = 3, 2
    elif name == 'einsum4':        # 'bti,bi->bt'
        dim, bdim = 2, 1
    else:  # pragma: no cover - every binary operator is listed
        raise MaskUnsupportedError(f'no masked form of binary operator {name!r}')
    if dim not in a_axes:
        return None
    wa, wb = _w(w, a.dim(), dim), _w(w, b.dim(), bdim)
    # b's dropped rows are zeroed only where not finite (the weight on a already removes them)
    return _BINARY_FN[name](_weigh(a, wa), torch.where((wb > 0) | torch.isfinite(b), b, 0.0), variant)


def run_masked(genome: GenomeProtocol, q: Tensor, k: Tensor, v: Tensor, weight: Tensor) -> Tensor:
    """``genome(q, k, v)`` with token weights ``weight`` ``(B, N)`` (see the module docstring).

    ``q``, ``k``, ``v`` are ``(B, heads, N, d)`` with the same ``N``; the result is
    ``(B, heads, N, d)``, computed at every token (a dropped token's row is what it would get as a
    query of the kept ones).

    Raises:
        MaskUnsupportedError: the genome has no masked form (:func:`mask_problem`).
        ValueError: shapes that do not fit.
    """
    plan = mask_plan(genome)
    B, _, N, d = q.shape
    if k.shape[-2] != N or v.shape[-2] != N:
        raise ValueError(f'a token mask needs keys/values at the query tokens: {N} queries, '
                         f'{k.shape[-2]} keys, {v.shape[-2]} values')
    if tuple(weight.shape) != (B, N):
        raise ValueError(f'token weights must be (batch, tokens) = ({B}, {N}), got {tuple(weight.shape)}')
    w = weight.to(q.dtype)

    def edge_fn(i: int, x: Tensor) -> Tensor:
        for p, u in enumerate(genome.unary[i]):
            op = UNARY_OPS[u]
            y = _unary(op.name, x, w, plan.unary[i][p])
            x = op.fn(x, d) if y is None else y
        return x

    def node_fn(j: int, a: Tensor, b: Tensor) -> Tensor:
        op = BINARY_OPS[genome.binary[j]]
        y = _binary(op.name, a, b, plan.variants[j], w, plan.binary[j])
        return op.fn(a, b, plan.variants[j]) if y is None else y

    return evaluate(GRAPHS[genome.graph], {'q': q, 'k': k, 'v': v}, edge_fn, node_fn)
