"""Static cost analysis of a genome: symbolic shapes through the DAG, asymptotic class, FLOPs.

Nothing is executed: every operator's shape rule is applied to symbolic shapes
``(B, h, N, d)`` (keys/values ``(B, h, M, d)`` when ``distinct_kv=True``). The result says

* ``invalid`` -- some operator does not accept its input shapes, the output is not
  ``(B, h, N, d)``, or the batch axis is moved/mixed (the failing edge or node is named);
* ``quadratic`` -- some intermediate has two token-sized dims (``N x N`` or ``N x M``), or the FLOP
  polynomial has degree >= 2 in the token counts;
* ``linear`` -- otherwise.

The analysis also fixes the branch of each binary operator (``einsum1`` / ``einsum2`` choose their
contraction from symbolic token counts); the compiler uses exactly these branches.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Tuple

from .graphs import GRAPHS, GenomeProtocol, evaluate
from .ops import BINARY_OPS, UNARY_OPS
from .symbolic import SB, SD, SH, SM, SN, Poly, Shape, ShapeError, fmt_shape

__all__ = ['Complexity', 'analyse', 'LINEAR', 'QUADRATIC', 'INVALID']

LINEAR = 'linear'
QUADRATIC = 'quadratic'
INVALID = 'invalid'

_B_INDEX = 0  # position of 'B' in symbolic monomials


@dataclass(frozen=True)
class Complexity:
    """Result of :func:`analyse`.

    Attributes:
        kind: ``'linear'``, ``'quadratic'`` or ``'invalid'``.
        code: machine-readable reason: ``'ok'``, ``'quadratic'``, ``'shape_error'``,
            ``'output_shape'`` or ``'batch_axis'``.
        reason: human-readable explanation (empty when linear).
        where: the edge/node where the problem appears (``None`` when linear).
        op: name of the operator that failed or first produced a quadratic tensor.
        flops_poly: FLOPs of one call as a polynomial in ``B, h, N, M, d`` (``None`` if invalid).
        token_degree: asymptotic degree in the token count (1 linear, 2 quadratic, ...).
        variants: branch chosen by each binary node.
        shapes: ``(label, shape)`` of every intermediate, in evaluation order.
        distinct_kv: whether keys/values were analysed with their own token count ``M``.
    """

    kind: str
    code: str
    reason: str
    where: Optional[str]
    op: Optional[str]
    flops_poly: Optional[Poly]
    token_degree: int
    variants: Tuple[int, ...]
    shapes: Tuple[Tuple[str, Shape], ...]
    distinct_kv: bool = False

    @property
    def ok(self) -> bool:
        return self.kind == LINEAR

    @property
    def linear(self) -> bool:
        return self.kind == LINEAR

    def flops(self, N: int, d: int, B: int = 1, heads: int = 1, M: Optional[int] = None) -> float:
        """FLOPs (multiply-adds counted once) of one call; per sample and head by default."""
        if self.flops_poly is None:
            raise ValueError(f'invalid genome has no FLOP count: {self.reason}')
        return self.flops_poly.evaluate(B=B, h=heads, N=N, M=N if M is None else M, d=d)

    def trace(self) -> str:
        """The symbolic shape of every intermediate, one per line."""
        return '\n'.join(f'{label}: {fmt_shape(s)}' for label, s in self.shapes)

    def __str__(self) -> str:
        if self.kind == INVALID:
            return f'invalid ({self.code}) at {self.where}: {self.reason}'
        return f'{self.kind}, FLOPs = {self.flops_poly}'


class _Fail(Exception):
    def __init__(self, code: str, where: str, op: Optional[str], reason: str) -> None:
        super().__init__(reason)
        self.code, self.where, self.op, self.reason = code, where, op, reason


def _token_dims(s: Shape) -> int:
    return sum(1 for x in s if x.depends_on_tokens())


def _check_batch(s: Shape, where: str, op: str) -> None:
    if not s or s[0] != SB or any(x.terms and any(m[_B_INDEX] for m in x.terms) for x in s[1:]):
        raise _Fail('batch_axis', where, op, f'{op} moves or mixes the batch axis: {fmt_shape(s)}')


@lru_cache(maxsize=65536)
def analyse(genome: GenomeProtocol, distinct_kv: bool = False) -> Complexity:
    """Static analysis of ``genome`` (cached; a genome is an immutable value). Also
    :meth:`attnzero.space.Genome.complexity`."""
    graph = GRAPHS[genome.graph]
    tok_kv = SM if distinct_kv else SN
    inputs = {'q': (SB, SH, SN, SD), 'k': (SB, SH, tok_kv, SD), 'v': (SB, SH, tok_kv, SD)}
    flops: List[Poly] = []
    shapes: List[Tuple[str, Shape]] = []
    variants: List[int] = []
    quad: List[Tuple[str, str, Shape]] = []

    def record(label: str, opname: str, s: Shape) -> None:
        _check_batch(s, label, opname)
        shapes.append((label, s))
        if not quad and _token_dims(s) >= 2:
            quad.append((label, opname, s))

    def edge_fn(i: int, s: Shape) -> Shape:
        for p, u in enumerate(genome.unary[i]):
            op = UNARY_OPS[u]
            label = f'f{i}[{p}] {op.name} (edge {i} from {graph.sources[i]})'
            try:
                out = op.shape(s)
            except ShapeError as e:
                raise _Fail('shape_error', label, op.name, str(e)) from None
            if len(out) > 5:
                raise _Fail('shape_error', label, op.name, f'rank > 5: {fmt_shape(out)}')
            flops.append(op.flops(s, out))
            record(label, op.name, out)
            s = out
        return s

    def node_fn(j: int, a: Shape, b: Shape) -> Shape:
        op = BINARY_OPS[genome.binary[j]]
        label = f'⊗{j} {op.name} (node B{j + 1})'
        try:
            out, variant = op.shape(a, b)
        except ShapeError as e:
            raise _Fail('shape_error', label, op.name, str(e)) from None
        flops.append(op.flops(a, b, out, variant))
        variants.append(variant)
        record(label, op.name, out)
        return out

    try:
        out = evaluate(graph, inputs, edge_fn, node_fn)
        if out != inputs['q']:
            raise _Fail('output_shape', 'output', None,
                        f'output shape {fmt_shape(out)} is not (B, h, N, d)')
    except _Fail as f:
        return Complexity(INVALID, f.code, f.reason, f.where, f.op, None, 0, tuple(variants),
                          tuple(shapes), distinct_kv)

    total = Poly.const(0)
    for f in flops:
        total = total + f
    degree = max(total.token_degree(), max((_token_dims(s) for _, s in shapes), default=0), 1)
    if degree >= 2:
        if quad:
            where, opname, s = quad[0]
            reason = f'{opname} produces a token x token tensor {fmt_shape(s)}'
        else:  # pragma: no cover - every quadratic FLOP count comes from a quadratic tensor here
            where, opname, reason = 'flops', None, f'FLOPs are of degree {degree} in N: {total}'
        return Complexity(QUADRATIC, 'quadratic', reason, where, opname, total, degree,
                          tuple(variants), tuple(shapes), distinct_kv)
    return Complexity(LINEAR, 'ok', '', None, None, total, 1, tuple(variants), tuple(shapes),
                      distinct_kv)


