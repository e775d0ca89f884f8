"""Algebraic simplifier over genomes: rewrite a program into an equivalent, cheaper one.

``simplify(genome)`` applies genome-level rewrite rules to a fixpoint and returns a
:class:`SimplifyResult` (the new genome and the rules that fired). Every rule is an algebraic
identity of the operators' semantics in :mod:`attnzero.space.ops` (exact, or exact up to the
operators' own tiny epsilons such as ``1e-9`` of ``min_max_normalize``); the tests check every
rewrite numerically against the reference evaluator on the functional-equivalence probes
(:func:`attnzero.space.fec.equivalent`, the quantised hash of the FEC fingerprint).

Rules (genome level; all keep the graph and the static complexity class):

* **idempotent** ops applied twice collapse: ``relu, relu`` -> ``relu`` (also ``abs``, ``sign``,
  ``l2norm_last``, ``l2_norm``, ``normalize``, ``min_max_normalize``, ``strange_op``);
* **involutions** cancel: ``transpose, transpose`` and ``revert, revert``; ``unsqz1, axis_sum1`` and
  ``unsqz2, axis_sum2`` cancel (sum over an inserted size-1 dim);
* **absorption**: ``g(f(x)) == g(x)`` -- a positive scalar (``scale``) before a scale-invariant op
  (``l2norm_last``, ``l2_norm``, ``normalize``, ``min_max_normalize``, ``sign``, ``strange_op``);
  a positive row-wise scaling (``scale``, ``l1norm_last``, ``l2norm_last``) before ``l2norm_last``;
  ``relu``/``abs`` after an op whose output is non-negative (``abs``, ``relu``, ``elu``, ``exp``,
  ``sigmoid``, ``softmax``, ...);
* **row scaling through a contraction** (graph level): a positive per-row scaling of the left
  operand of ``matmul`` (or of a row-preserving ``einsum1``/``product``) scales the rows of the
  result by the same positive factor, so it is dropped when every consumer of the result starts
  with an op invariant to positive row scaling (``l2norm_last``, ``strange_op``, ``sign``). In
  Trial-105 this removes the L2 normalisation of Q before ``Q @ normalize(B1)``;
* **dead code**: the ignored operand of ``first``/``second`` (and of the original
  ``cosine_similarity``, which compares A with itself) has its unary list emptied, and a node whose
  result is dead becomes ``first`` (free).

Rewrites that a genome cannot express (an affine map of V, such as min-max normalisation, folded
into the ``K^T V`` contraction as a rank-1 correction; the ``+1`` of ELU+1 folded the same way;
contraction order of matmul chains chosen for the smallest intermediate) are done by the fast
executor, :mod:`attnzero.space.fast`, which runs the simplified genome.

The simplifier sits below :mod:`attnzero.space.genome` (``Genome.compile`` runs it): it works on
any :class:`~attnzero.space.graphs.GenomeProtocol` and builds the rewritten genomes with
``genome.replace``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Set, Tuple

from .cost import analyse
from .graphs import GRAPHS, GenomeProtocol, evaluate
from .ops import BINARY_BY_NAME, BINARY_OPS, UNARY_BY_NAME, UNARY_OPS
from .symbolic import SB, SD, SH, SN, ShapeError

__all__ = ['simplify', 'SimplifyResult', 'RULES']


def _u(*names: str) -> Set[int]:
    return {UNARY_BY_NAME[n].index for n in names}


_B = {n: BINARY_BY_NAME[n].index for n in ('first', 'second', 'cosine_similarity', 'matmul',
                                           'einsum1', 'product')}
IDEMPOTENT = _u('relu', 'abs', 'sign', 'l2norm_last', 'l2_norm', 'normalize', 'min_max_normalize',
                'strange_op')
INVOLUTION = _u('transpose', 'revert')
CANCEL_PAIRS = {(UNARY_BY_NAME['unsqz1'].index, UNARY_BY_NAME['axis_sum1'].index),
                (UNARY_BY_NAME['unsqz2'].index, UNARY_BY_NAME['axis_sum2'].index)}
SCALE = UNARY_BY_NAME['scale'].index
#: invariant to multiplication of the whole tensor by a positive scalar
SCALAR_INVARIANT = _u('l2norm_last', 'l2_norm', 'normalize', 'min_max_normalize', 'sign',
                      'strange_op')
#: multiply each row (all dims but the last) by a positive factor
POS_ROW_SCALING = _u('scale', 'l1norm_last', 'l2norm_last')
#: invariant to positive per-row scaling
ROW_INVARIANT = _u('l2norm_last', 'strange_op', 'sign')
#: ops whose output is >= 0 everywhere (NaN aside)
NONNEG = _u('abs', 'relu', 'elu', 'exp', 'sigmoid', 'softmax', 'sqrt', 'relu2', 'softplus',
            'sigmoid_1_reverse', 'focus3', 'min_max_normalize')
ABS_LIKE = _u('relu', 'abs')
L2LAST = UNARY_BY_NAME['l2norm_last'].index

#: rule names, in the order they are tried
RULES = ('idempotent', 'involution', 'cancel_pair', 'absorb_scale', 'absorb_row_scaling',
         'absorb_nonneg', 'row_scaling_through_contraction', 'dead_code')


@dataclass(frozen=True)
class SimplifyResult:
    """``genome``: the simplified genome; ``applied``: ``(rule, where)`` of every rewrite."""

    original: GenomeProtocol
    genome: GenomeProtocol
    applied: Tuple[Tuple[str, str], ...]

    @property
    def changed(self) -> bool:
        return self.genome != self.original


def _rewrite_list(lst: Tuple[int, ...]) -> Tuple[Tuple[int, ...], Optional[str]]:
    """One local rewrite of a unary list, or ``(lst, None)``."""
    for p in range(len(lst) - 1):
        a, b = lst[p], lst[p + 1]
        if a == b and a in IDEMPOTENT:
            return lst[:p + 1] + lst[p + 2:], 'idempotent'
        if a == b and a in INVOLUTION:
            return lst[:p] + lst[p + 2:], 'involution'
        if (a, b) in CANCEL_PAIRS:
            return lst[:p] + lst[p + 2:], 'cancel_pair'
        if a == SCALE and b in SCALAR_INVARIANT:
            return lst[:p] + lst[p + 1:], 'absorb_scale'
        if a in POS_ROW_SCALING and b == L2LAST:
            return lst[:p] + lst[p + 1:], 'absorb_row_scaling'
        if a in NONNEG and b in ABS_LIKE:
            return lst[:p + 1] + lst[p + 2:], 'absorb_nonneg'
    return lst, None


def _consumers(graph_name: str) -> Dict[str, List[int]]:
    g = GRAPHS[graph_name]
    out: Dict[str, List[int]] = {}
    for i, s in enumerate(g.sources):
        out.setdefault(s, []).append(i)
    return out


def _symbolic_shapes(genome: GenomeProtocol) -> Optional[Dict[str, tuple]]:
    """Symbolic shape of every edge (``'eI'``) and node (``'bJ'``) output, or ``None``."""
    out: Dict[str, tuple] = {}

    def edge_fn(i: int, s: tuple) -> tuple:
        for u in genome.unary[i]:
            s = UNARY_OPS[u].shape(s)
        out[f'e{i}'] = s
        return s

    def node_fn(j: int, a: tuple, b: tuple) -> tuple:
        s = BINARY_OPS[genome.binary[j]].shape(a, b)[0]
        out[f'b{j}'] = s
        return s

    x = (SB, SH, SN, SD)
    try:
        evaluate(GRAPHS[genome.graph], {'q': x, 'k': x, 'v': x}, edge_fn, node_fn)
    except ShapeError:
        return None
    return out


def _row_scaling_rule(genome: GenomeProtocol) -> Optional[Tuple[GenomeProtocol, str]]:
    g = GRAPHS[genome.graph]
    cons = _consumers(genome.graph)
    variants = analyse(genome, False).variants
    shapes = _symbolic_shapes(genome)
    if shapes is None:
        return None
    last = len(g.nodes) - 1
    for j, node in enumerate(g.nodes):
        if j == last:
            continue  # the output has no consumer that could absorb the scaling
        op = genome.binary[j]
        row_ops = op == _B['matmul'] or op == _B['product'] or (op == _B['einsum1'] and variants[j] == 1)
        if not row_ops:
            continue
        users = cons.get(f'b{j}', [])
        if not users or any(not genome.unary[e] or genome.unary[e][0] not in ROW_INVARIANT
                            or f'e{e}' in cons for e in users):
            continue
        # a chained edge (i3n402's e5 -> e6) would see the scaling before its first op: excluded
        sides = (node.left, node.right) if op == _B['product'] else (node.left,)
        if op == _B['matmul'] and (len(shapes[f'e{node.left}']) < 2 or len(shapes[f'e{node.right}']) < 2):
            continue  # a vector operand would turn row factors into per-element factors
        for e in sides:
            lst = genome.unary[e]
            if lst and lst[-1] in POS_ROW_SCALING and f'e{e}' not in cons:
                unary = list(genome.unary)
                unary[e] = lst[:-1]
                return genome.replace(unary=unary), f'edge {e} -> node {j}'
    return None


def _dead_code_rule(genome: GenomeProtocol) -> Optional[Tuple[GenomeProtocol, str]]:
    g = GRAPHS[genome.graph]
    live_nodes: Set[int] = set()
    live_edges: Set[int] = set()

    def mark_edge(e: int) -> None:
        if e in live_edges:
            return
        live_edges.add(e)
        s = g.sources[e]
        if s[0] == 'b':
            mark_node(int(s[1:]))
        elif s[0] == 'e':
            mark_edge(int(s[1:]))

    def mark_node(j: int) -> None:
        if j in live_nodes:
            return
        live_nodes.add(j)
        op, n = genome.binary[j], g.nodes[j]
        if op != _B['second']:
            mark_edge(n.left)
        if op not in (_B['first'], _B['cosine_similarity']):
            mark_edge(n.right)

    mark_node(len(g.nodes) - 1)
    unary = [lst if e in live_edges else () for e, lst in enumerate(genome.unary)]
    binary = [b if j in live_nodes else _B['first'] for j, b in enumerate(genome.binary)]
    new = genome.replace(unary=unary, binary=binary)
    if new == genome:
        return None
    dead = sorted(set(range(len(g.sources))) - live_edges)
    return new, f'dead edges {dead}, dead nodes {sorted(set(range(len(g.nodes))) - live_nodes)}'


def _kind(genome: GenomeProtocol, distinct_kv: bool) -> str:
    return analyse(genome, distinct_kv).kind


@lru_cache(maxsize=16384)
def simplify(genome: GenomeProtocol, distinct_kv: bool = False) -> SimplifyResult:
    """Rewrite ``genome`` to an equivalent cheaper genome (fixpoint of the rules above).

    A rewrite is kept only if the static analysis of the result is not worse (a linear genome
    stays linear, a valid one valid), so the fast executor can rely on the analysis of the
    simplified genome. Cached: genomes are immutable values.
    """
    cur = genome
    applied: List[Tuple[str, str]] = []
    base_kind = _kind(genome, distinct_kv)
    rank = {'linear': 0, 'quadratic': 1, 'invalid': 2}
    for _ in range(64):
        cand: Optional[Tuple[GenomeProtocol, str, str]] = None
        for i, lst in enumerate(cur.unary):
            new_lst, rule = _rewrite_list(lst)
            if rule is not None:
                unary = list(cur.unary)
                unary[i] = new_lst
                cand = (cur.replace(unary=unary), rule, f'edge {i}')
                break
        if cand is None:
            r = _row_scaling_rule(cur)
            if r is not None:
                cand = (r[0], 'row_scaling_through_contraction', r[1])
        if cand is None:
            r = _dead_code_rule(cur)
            if r is not None:
                cand = (r[0], 'dead_code', r[1])
        if cand is None:
            break
        new, rule, where = cand
        if rank[_kind(new, distinct_kv)] > rank[base_kind]:
            break  # never make the program statically worse (should not happen)
        cur = new
        applied.append((rule, where))
    return SimplifyResult(genome, cur, tuple(applied))
