"""Fast executor of compiled genomes (the default behind :meth:`Genome.compile`).

The reference evaluator (``compile(fast=False)``) runs every operator out-of-place exactly as
written. The fast executor computes the same function (up to floating-point rounding) with less
memory traffic:

1. the genome is first rewritten by the algebraic simplifier (:mod:`attnzero.space.simplify`);
2. **affine values stay symbolic**: a value ``a * X + b`` with scalar ``a``, ``b`` is carried as
   ``(X, a, b)``. ``min_max_normalize`` and ``normalize`` (batch-global) become one read-only
   statistics pass over ``X`` (``aminmax`` / ``mean`` and ``std``, done once) instead of a read-write
   pass; ``scale`` and ``revert`` cost nothing. The statistics stay 0-dim tensors (gradients flow
   through them; nothing is read to the host). ELU+1 is ``exp2(log2(e) * min(X, 0)) +
   max(X, 0)`` (:func:`~attnzero.space.ops.elu_plus_one`: no ``expm1``, which is not vectorised on
   AVX-512 CPUs);
3. **contractions absorb affine operands as rank-1 corrections**: ``(a X + b)^T Y = a X^T Y +
   b 1 (sum_n Y)^T``, so Trial-105's min-max normalised V never touches the ``N x d`` tensors
   again -- only a column sum (a read-only pass) and a ``d x d`` correction. An
   operand's affine map is absorbed only where that is cheaper than applying it;
4. **contraction order**: products of plain contractions stay unevaluated (a chain) until they are
   consumed; a chain is evaluated in the order with the fewest multiply-adds (matrix-chain DP), so
   e.g. ``(Q K^T) V`` runs as ``Q (K^T V)``;
5. **in-place work on internal intermediates** when no gradient is being recorded: elementwise
   ops, normalisations, the rank-1 corrections and products write into tensors the program owns
   (never into its inputs, never into a value with a second consumer, never into an expanded
   view); with autograd on, everything is out-of-place (so backward is exact). Every intermediate
   is dropped right after its last consumer (a static plan of the graph walk), which lowers the
   peak memory and lets the allocator hand the next result a block that is still in cache;
6. **half precision** (float16/bfloat16): elementwise work on large tensors stays in the input
   dtype; norms, sums and batch statistics are accumulated in float32; contractions over the token
   axis (whose results grow with ``N``: ``K^T V`` would overflow float16 and lose the fluctuations
   that a following ``normalize`` keeps in bfloat16) take float32 operands; reducing operators
   without a dedicated path run on a float32 copy; the result is cast back to the input dtype.

7. **scratch pool** (eager CPU calls without autograd): large temporaries (at least
   ``SCRATCH_MIN_NUMEL`` elements) are written into buffers kept from the previous calls of the
   same thread (``out=`` of the ops), so glibc's default malloc does not hand them out as fresh
   pages to fault in on every call; the buffer holding the result is never kept (the caller owns
   it). At most ``SCRATCH_LIMIT_BYTES`` per thread (0 turns it off); :func:`clear_scratch` frees
   the calling thread's buffers. Not used under autograd, ``torch.compile`` / ``torch.export``,
   or on other devices (they have caching allocators).

**No host synchronisation, no data-dependent control flow**: no statistic is read to the host
and no branch depends on a tensor's values, so the executor runs under ``torch.export`` and
``torch.compile(fullgraph=True)`` and never stalls a GPU stream. The reference's special cases
are expressed with tensor ops on the 0-dim statistics: ``normalize`` of a tensor with zero spread
or non-finite statistics is 0 (the reference maps its NaN to 0; ``torch.where`` on the scale and
shift), and ``min_max_normalize`` needs no special case (its symbolic form gives the reference's
NaN / 0 pattern). The one remaining difference: where the *input* of a batch-global ``normalize``
holds inf/NaN, the reference returns 0 everywhere, the fast path NaN at those entries (0 elsewhere).

``backend='inductor'`` additionally wraps the executor in ``torch.compile(dynamic=True)``. It fuses the remaining
elementwise passes; the first call per input shape compiles (seconds on a CPU); see
``docs/benchmarks.md`` for the measured effect.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .graphs import GRAPHS, GenomeProtocol
from .ops import BINARY_BY_NAME, BINARY_OPS, UNARY_BY_NAME, UNARY_OPS, elu_plus_one

__all__ = ['FastExecutor', 'BACKENDS', 'clear_scratch', 'SCRATCH_MIN_NUMEL', 'SCRATCH_LIMIT_BYTES']

BACKENDS = ('eager', 'inductor')
_HALF = (torch.float16, torch.bfloat16)
_F32 = torch.float32

_U = {name: op.index for name, op in UNARY_BY_NAME.items()}
_BI = {name: op.index for name, op in BINARY_BY_NAME.items()}

# elementwise ops with an in-place twin: (out-of-place, in-place, into a given buffer ``out``;
# torch.relu has no out= form)
_ELEMENTWISE: Dict[int, Tuple[Any, Any, Any]] = {
    _U['relu']: (torch.relu, torch.relu_, lambda x, out: torch.clamp_min(x, 0, out=out)),
    _U['abs']: (torch.abs, torch.abs_, lambda x, out: torch.abs(x, out=out)),
    _U['exp']: (torch.exp, torch.exp_, lambda x, out: torch.exp(x, out=out)),
    _U['sigmoid']: (torch.sigmoid, torch.sigmoid_, lambda x, out: torch.sigmoid(x, out=out)),
    _U['sqrt']: (torch.sqrt, torch.sqrt_, lambda x, out: torch.sqrt(x, out=out)),
    _U['log']: (torch.log, torch.log_, lambda x, out: torch.log(x, out=out)),
    _U['sign']: (torch.sign, lambda x: x.sign_(), lambda x, out: torch.sign(x, out=out)),
}
# elementwise ops (no reduction): safe to run in half precision
_ELEMENTWISE_ONLY = {_U[n] for n in ('no_op', 'log', 'abslog', 'abs', 'softsign', 'invert', 'sigmoid',
                                     'sqrt', 'revert', 'sign', 'scale', 'elu', 'relu', 'exp',
                                     'sigmoid_1_reverse', 'relu2', 'softplus', 'silu', 'transpose',
                                     'unsqz1', 'unsqz2', 'repeat', 'repeat_d', 'ones_aug')}
_VIEWS = {_U['transpose'], _U['unsqz1'], _U['unsqz2']}

# operator indices used on the hot path (module constants: no dict lookups per call)
_U_TRANSPOSE, _U_SCALE, _U_REVERT = _U['transpose'], _U['scale'], _U['revert']
_U_MINMAX, _U_NORMALIZE, _U_ELU = _U['min_max_normalize'], _U['normalize'], _U['elu']
_U_L2LAST, _U_L2TOK = _U['l2norm_last'], _U['l2_norm']
_B_FIRST, _B_SECOND, _B_MATMUL = _BI['first'], _BI['second'], _BI['matmul']
_B_EINSUM1, _B_EINSUM2, _B_PRODUCT, _B_SUM, _B_CAT = (_BI['einsum1'], _BI['einsum2'], _BI['product'],
                                                      _BI['sum'], _BI['cat'])
_EXPANDS = {_U['repeat'], _U['repeat_d']}


def _bshape(*shapes: Sequence[int]) -> Tuple[int, ...]:
    """``torch.broadcast_shapes`` for plain int shapes (its Python overhead was 0.14 ms per call
    of Trial-105, a fifth of the matmul floor at N = 12544)."""
    first = shapes[0]
    for other in shapes[1:]:
        if other != first:
            break
    else:
        return tuple(first)
    n = max(len(s) for s in shapes)
    out = [1] * n
    for s in shapes:
        for i, x in enumerate(s, n - len(s)):
            if x != 1:
                if out[i] not in (1, x):
                    raise RuntimeError(f'shapes {[tuple(t) for t in shapes]} do not broadcast')
                out[i] = x
    return tuple(out)


def _hint(n: Any) -> int:
    """A size as a plain int. Under ``torch.export`` with dynamic shapes a size is a SymInt; the
    cost decisions below (contraction order, where to absorb an affine map) only choose between
    equal results, so they use the example input's value (the hint) instead of recording a guard
    that would restrict the exported program to sizes making the same choice."""
    if isinstance(n, torch.SymInt):
        from torch.fx.experimental.symbolic_shapes import optimization_hint
        return optimization_hint(n)
    return int(n)


def _numel(x: Tensor) -> int:
    return math.prod([_hint(s) for s in x.shape])


def _smin(x: Any, y: Any) -> Any:
    return torch.minimum(x, y) if isinstance(x, Tensor) or isinstance(y, Tensor) else min(x, y)


def _smax(x: Any, y: Any) -> Any:
    return torch.maximum(x, y) if isinstance(x, Tensor) or isinstance(y, Tensor) else max(x, y)


def _sabs(x: Any) -> Any:
    return x.abs() if isinstance(x, Tensor) else abs(x)


@dataclass(slots=True)
class _Val:
    """``a * core + b`` (``a``/``b`` ``None`` = 1/0; 0-dim tensors or floats), or an unevaluated
    matmul chain ``chain[0] @ chain[1] @ ...`` (then ``core`` is ``None``).

    ``owned``: the program may write into ``core`` (it created it, nobody else reads it)."""

    core: Optional[Tensor]
    a: Any = None
    b: Any = None
    owned: bool = False
    chain: Optional[Tuple[Tensor, ...]] = None
    s: Any = None    # shift and divisor applied first: value = (core + s) / den * a + b, as the
    den: Any = None  # reference normalisations compute it (exact zeros, same rounding)

    @property
    def plain(self) -> bool:
        return self.chain is None and self.plain_or_chain

    def shared(self) -> '_Val':
        return _Val(self.core, self.a, self.b, False, self.chain, self.s, self.den)

    @property
    def plain_or_chain(self) -> bool:
        return self.a is None and self.b is None and self.s is None and self.den is None

    def affine(self) -> '_Val':
        """The same value with the shift folded into ``b`` (``a * core + b``)."""
        if self.s is None and self.den is None:
            return self
        a = self.a
        if self.den is not None:
            a = 1.0 / self.den if a is None else a / self.den
        b = self.b
        if self.s is not None:
            b = self.s * a if b is None else self.s * a + b
        return _Val(self.core, a, b, self.owned, self.chain)


#: CPU temporaries of at least this many elements come from the per-thread scratch pool
SCRATCH_MIN_NUMEL = 2 ** 16
#: the most bytes one thread's pool keeps between calls (the least recently used go first; 0: off)
SCRATCH_LIMIT_BYTES = 512 * 2 ** 20


class _Scratch(threading.local):
    """Free buffers of one thread, by ``(numel, dtype, device, inference mode)``, least recently
    used first. A buffer is borrowed for one call of the executor and given back at its end,
    unless the call's result lives in it (then the caller owns it)."""

    def __init__(self) -> None:
        self.free: 'OrderedDict[Tuple, List[Tensor]]' = OrderedDict()
        self.bytes = 0

    def take(self, key: Tuple) -> Optional[Tensor]:
        bufs = self.free.get(key)
        if not bufs:
            return None
        buf = bufs.pop()
        if not bufs:
            del self.free[key]
        self.bytes -= buf.nbytes
        return buf

    def give(self, key: Tuple, buf: Tensor) -> None:
        limit = SCRATCH_LIMIT_BYTES
        if buf.nbytes > limit:
            return
        while self.bytes + buf.nbytes > limit and self.free:
            old_key = next(iter(self.free))
            old = self.free[old_key]
            self.bytes -= old.pop(0).nbytes
            if not old:
                del self.free[old_key]
        self.free.setdefault(key, []).append(buf)
        self.free.move_to_end(key)
        self.bytes += buf.nbytes


_SCRATCH = _Scratch()


def clear_scratch() -> int:
    """Free the calling thread's scratch buffers; returns the bytes released."""
    freed = _SCRATCH.bytes
    _SCRATCH.free.clear()
    _SCRATCH.bytes = 0
    return freed


class _Ctx:
    __slots__ = ('inplace', 'half', 'd', 'tokens', 'out_dtype', 'q', 'k', 'v', 'pool', 'borrowed')

    def __init__(self, inplace: bool, half: bool, d: int, tokens: Sequence[int], out_dtype,
                 q: Tensor, k: Tensor, v: Tensor, pool: bool = False) -> None:
        self.inplace, self.half, self.d, self.tokens, self.out_dtype = inplace, half, d, tuple(tokens), out_dtype
        self.q, self.k, self.v = q, k, v
        self.pool = pool
        self.borrowed: List[Tuple[Tuple, Tensor]] = []

    def empty(self, shape: Sequence[int], dtype: torch.dtype) -> Optional[Tensor]:
        """A scratch buffer of ``shape`` (contiguous), or ``None`` (allocate as usual): large CPU
        temporaries of a no-grad eager call reuse the buffers of earlier calls, so they do not
        fault fresh pages in from the kernel on every call (what glibc's default malloc makes
        multi-MB blocks do: ``mmap``/trim and first-touch zeroing, measured at 1.2-1.5k page faults
        per Trial-105 call at N = 12544 without the pool)."""
        if not self.pool:
            return None
        n = math.prod(shape)
        if n < SCRATCH_MIN_NUMEL:
            return None
        key = (n, dtype, self.q.device, torch.is_inference_mode_enabled())
        buf = _SCRATCH.take(key)
        if buf is None:
            buf = torch.empty(n, dtype=dtype, device=self.q.device)
        self.borrowed.append((key, buf))
        return buf.view(shape)

    def empty_like(self, x: Tensor) -> Optional[Tensor]:
        return self.empty(x.shape, x.dtype)

    def give_back(self, result: Tensor) -> None:
        """End of the call: every borrowed buffer goes back to the pool except the result's."""
        if not self.borrowed:
            return
        keep = result.untyped_storage().data_ptr()
        for key, buf in self.borrowed:
            if buf.untyped_storage().data_ptr() != keep:
                _SCRATCH.give(key, buf)
        self.borrowed = []


def _mul(x: Any, y: Any) -> Any:
    if x is None:
        return y
    if y is None:
        return x
    return x * y


def _chain_product(factors: Sequence[Tensor], ctx: _Ctx) -> Tensor:
    """Evaluate a matmul chain in the order with the fewest multiply-adds (matrix-chain DP)."""
    n = len(factors)
    if n == 1:
        return factors[0]
    shapes = [tuple([_hint(d) for d in f.shape]) for f in factors]
    batch = [s[:-2] for s in shapes]
    rows = [s[-2] for s in shapes]
    cols = [s[-1] for s in shapes]

    def bnum(i: int, j: int) -> int:
        return math.prod(_bshape(*batch[i:j + 1])) if j > i else math.prod(batch[i])

    cost: Dict[Tuple[int, int], Tuple[float, int]] = {(i, i): (0.0, -1) for i in range(n)}
    for length in range(2, n + 1):
        for i in range(n - length + 1):
            j = i + length - 1
            best = (float('inf'), -1)
            for k in range(i, j):
                c = cost[(i, k)][0] + cost[(k + 1, j)][0] + bnum(i, j) * rows[i] * cols[k] * cols[j]
                if c < best[0]:
                    best = (c, k)
            cost[(i, j)] = best

    return _chain_build(factors, cost, 0, n - 1, ctx)


def _chain_build(factors: Sequence[Tensor], cost: Dict[Tuple[int, int], Tuple[float, int]], i: int, j: int,
                 ctx: _Ctx) -> Tensor:
    """Product of ``factors[i..j]`` split where ``cost`` says (module level: a closure calling
    itself would be a reference cycle holding the factors until the next garbage collection)."""
    if i == j:
        return factors[i]
    k = cost[(i, j)][1]
    return _matmul(_chain_build(factors, cost, i, k, ctx), _chain_build(factors, cost, k + 1, j, ctx), ctx)


def _matmul(x: Tensor, y: Tensor, ctx: _Ctx) -> Tensor:
    if ctx.half and x.dim() >= 1 and x.shape[-1] in ctx.tokens and x.shape[-1] > ctx.d:
        x, y = x.to(_F32), y.to(_F32)  # token contraction: float32 (sums grow with N)
    elif x.dtype != y.dtype:
        dt = torch.promote_types(x.dtype, y.dtype)
        x, y = x.to(dt), y.to(dt)
    if x.dim() > 3 and x.dim() == y.dim() and x.shape[:-2] == y.shape[:-2]:
        # same batch dims: one bmm on (views of) the flattened batch -- torch.matmul's own
        # expand/reshape round trip costs a few dispatches per call
        lead = x.shape[:-2]
        x3, y3 = x.reshape(-1, x.shape[-2], x.shape[-1]), y.reshape(-1, y.shape[-2], y.shape[-1])
        out = torch.bmm(x3, y3, out=ctx.empty((x3.shape[0], x3.shape[1], y3.shape[2]), x.dtype))
        return out.view(*lead, x.shape[-2], y.shape[-1])
    return torch.matmul(x, y)


def _materialize(v: _Val, ctx: _Ctx) -> Tuple[Tensor, bool]:
    """Tensor of ``v`` and whether the program owns it."""
    x, owned = v.core, v.owned
    if v.chain is not None:
        x, owned = _chain_product(v.chain, ctx), True
    if v.s is not None:
        if owned and ctx.inplace and _writable(x):
            x = x.add_(v.s)
        else:
            x, owned = torch.add(x, v.s, out=_scratch_for(ctx, x, v.s)), True
    if v.den is not None:
        if owned and ctx.inplace and _writable(x):
            x = x.div_(v.den)
        else:
            x, owned = torch.div(x, v.den, out=_scratch_for(ctx, x, v.den)), True
    if v.a is None and v.b is None:
        return x, owned
    if owned and ctx.inplace and _writable(x):
        if v.a is not None:
            x.mul_(v.a)
        if v.b is not None:
            x.add_(v.b)
        return x, True
    if v.a is not None:
        x = torch.mul(x, v.a, out=_scratch_for(ctx, x, v.a))
        if v.b is not None:
            x = x.add_(v.b) if ctx.inplace else x + v.b
        return x, True
    return torch.add(x, v.b, out=_scratch_for(ctx, x, v.b)), True


def _scratch_for(ctx: _Ctx, x: Tensor, y: Any) -> Optional[Tensor]:
    """A scratch buffer for the result of an elementwise ``x (op) y`` (same broadcast shape and
    promoted dtype as torch gives it), or ``None``."""
    if not ctx.pool:
        return None
    if isinstance(y, Tensor):
        shape = _bshape(tuple(x.shape), tuple(y.shape))
        dtype = torch.result_type(x, y)
    else:
        shape, dtype = tuple(x.shape), torch.result_type(x, y)
    return ctx.empty(shape, dtype)


def _writable(x: Tensor) -> bool:
    """No internal overlap (expanded dims): safe for in-place writes."""
    if x.is_contiguous():
        return True
    return all(s != 0 or n <= 1 for s, n in zip(x.stride(), x.shape))


def _stat_dtype(x: Tensor) -> Tensor:
    return x.to(_F32) if x.dtype in _HALF else x


class FastExecutor:
    """Runs a (simplified) genome's graph with the rewrites described in the module docstring.

    Args:
        genome: the genome to run (normally already simplified).
        variants: the branch of every binary node, from the static analysis.
    """

    def __init__(self, genome: GenomeProtocol, variants: Sequence[int]) -> None:
        self.genome = genome
        self.graph = GRAPHS[genome.graph]
        self.variants = tuple(variants)
        uses: Dict[str, int] = {}
        for s in self.graph.sources:
            uses[s] = uses.get(s, 0) + 1
        for n in self.graph.nodes:
            for e in (n.left, n.right):
                uses[f'e{e}'] = uses.get(f'e{e}', 0) + 1
        # static plan of the graph walk: per edge (source kind, source index, source shared, unary
        # ops, edge shared); per node, the values read for the last time by it (dropped after it:
        # less memory, and the allocator reuses blocks that are still cached)
        g = self.graph
        self._edges = tuple((src[0], int(src[1:]) if src[0] in 'be' else -1, uses.get(src, 1) > 1,
                             tuple(genome.unary[i]), uses.get(f'e{i}', 1) > 1)
                            for i, src in enumerate(g.sources))
        last: Dict[Tuple[str, int], int] = {}
        done: set = set()

        def walk(i: int, j: int) -> None:
            last[('e', i)] = j
            if i in done:
                return
            done.add(i)
            kind, idx = self._edges[i][0], self._edges[i][1]
            if kind == 'b':
                last[('b', idx)] = j
            elif kind == 'e':
                walk(idx, j)

        for j, n in enumerate(g.nodes):
            walk(n.left, j)
            walk(n.right, j)
        final = len(g.nodes) - 1
        self._drops = tuple(tuple(key for key, jj in last.items() if jj == j) if j != final else ()
                            for j in range(len(g.nodes)))

    # --- the graph ---------------------------------------------------------------------------
    def __call__(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
        # the scratch pool: eager CPU calls without autograd only (under autograd the temporaries
        # are saved for backward; torch.compile / export trace the program and allocate
        # themselves; other devices have a caching allocator)
        pool = (not grad and q.device.type == 'cpu' and SCRATCH_LIMIT_BYTES > 0
                and not torch.compiler.is_compiling() and not isinstance(q.shape[-2], torch.SymInt))
        ctx = _Ctx(not grad, q.dtype in _HALF, q.shape[-1], (q.shape[-2], k.shape[-2]), q.dtype, q, k, v,
                   pool)
        nodes: Dict[int, _Val] = {}
        edges: Dict[int, _Val] = {}
        edge = self._edge
        binary = self._binary
        for j, (n, drops) in enumerate(zip(self.graph.nodes, self._drops)):
            nodes[j] = binary(j, edge(n.left, nodes, edges, ctx), edge(n.right, nodes, edges, ctx), ctx)
            for kind, idx in drops:
                (edges if kind == 'e' else nodes).pop(idx, None)
        out, _ = _materialize(nodes[len(self.graph.nodes) - 1], ctx)
        out = out.to(q.dtype) if out.dtype != q.dtype else out
        if pool:
            ctx.give_back(out)
        return out

    def _edge(self, i: int, nodes: Dict[int, _Val], edges: Dict[int, _Val], ctx: _Ctx) -> _Val:
        """Value of edge ``i``, memoised in ``edges``. A method, not a closure inside ``__call__``:
        a closure that calls itself is a reference cycle, which kept every intermediate and the
        output of a call alive until the garbage collector ran (up to hundreds of MiB per call)."""
        x = edges.get(i)
        if x is not None:
            return x
        kind, idx, shared, ops, once = self._edges[i]
        if kind == 'b':
            if shared:
                nodes[idx] = _once(nodes[idx], ctx)
            x = nodes[idx]
        elif kind == 'e':
            x = self._edge(idx, nodes, edges, ctx)
        else:
            x = _Val(ctx.q if kind == 'q' else ctx.k if kind == 'k' else ctx.v)
        if shared:
            x = x.shared()
        for u in ops:
            x = self._unary(u, x, ctx)
        if once:
            x = _once(x, ctx)
        edges[i] = x
        return x

    # --- unary ---------------------------------------------------------------------------------
    def _unary(self, u: int, x: _Val, ctx: _Ctx) -> _Val:
        if u in _VIEWS:
            if x.chain is not None:
                if u == _U_TRANSPOSE:
                    return _Val(None, x.a, x.b, False, tuple(f.transpose(-1, -2) for f in reversed(x.chain)))
                t, own = _materialize(x, ctx)
                x = _Val(t, owned=own)
            fn = UNARY_OPS[u].fn
            return _Val(fn(x.core, ctx.d), x.a, x.b, x.owned, s=x.s, den=x.den)
        if u == _U_SCALE:
            w = (x.chain[-1].shape[-1] if x.chain is not None else x.core.shape[-1]) ** -0.5
            return _Val(x.core, _mul(x.a, w), None if x.b is None else x.b * w, x.owned, x.chain, x.s, x.den)
        if u == _U_REVERT:
            return _Val(x.core, _mul(x.a, -1.0), None if x.b is None else -x.b, x.owned, x.chain, x.s,
                        x.den)
        if u == _U_MINMAX and x.chain is None:
            return self._min_max(x, ctx)
        if u == _U_NORMALIZE and x.chain is None:
            return self._normalize(x, ctx)
        t, own = _materialize(x, ctx)
        ip = own and ctx.inplace and _writable(t)
        if u == _U_ELU:  # ELU + 1 = exp(min(t, 0)) + max(t, 0): no expm1, no offset to carry
            return _Val(elu_plus_one(t, inplace=ip, empty=ctx.empty_like), owned=True)
        if u in _ELEMENTWISE:
            f, f_, f_out = _ELEMENTWISE[u]
            if ip:
                return _Val(f_(t), owned=True)
            buf = ctx.empty_like(t)
            return _Val(f(t) if buf is None else f_out(t, buf), owned=True)
        if u in (_U_L2LAST, _U_L2TOK):
            dim = -1 if u == _U_L2LAST else -2
            if t.dim() < (1 if dim == -1 else 2):
                return _Val(UNARY_OPS[u].fn(t, ctx.d), owned=True)
            nrm = torch.linalg.vector_norm(t, dim=dim, keepdim=True,
                                           dtype=_F32 if t.dtype in _HALF else None).clamp_min(1e-12)
            if ip:
                return _Val(t.div_(nrm), owned=True)
            if nrm.dtype == t.dtype:
                return _Val(torch.div(t, nrm, out=ctx.empty_like(t)), owned=True)
            return _Val((t / nrm).to(t.dtype), owned=True)
        if u in _EXPANDS:
            return _Val(UNARY_OPS[u].fn(t, ctx.d), owned=False)
        if ctx.half and u not in _ELEMENTWISE_ONLY:
            t = t.to(_F32)  # reductions of the remaining operators: float32
        return _Val(UNARY_OPS[u].fn(t, ctx.d), owned=True)

    def _min_max(self, x: _Val, ctx: _Ctx) -> _Val:
        if not x.plain:  # statistics of the exact values (rare: a normalisation of a normalisation)
            x = _Val(*_materialize_owned(x, ctx))
        # the statistics stay 0-dim tensors: no host read, no data-dependent branch (exportable,
        # no device sync). Non-finite statistics need no fallback: the symbolic form gives the
        # reference's values (NaN everywhere when X holds NaN or -inf; 0, and NaN at +inf
        # entries, when it holds only +inf).
        # min() and max() (two passes) where gradients flow: aminmax has no derivative in some
        # torch versions this package allows (2.11: backward raises "derivative for aten::aminmax
        # is not implemented"; 2.14 has one), and the reference differentiates min() and max();
        # also under torch.export / ONNX (ops every runtime has). Otherwise one aminmax pass.
        if torch.compiler.is_exporting() or (torch.is_grad_enabled() and x.core.requires_grad):
            lo, hi = x.core.min(), x.core.max()
        else:
            lo, hi = torch.aminmax(x.core)
        if ctx.half:
            lo, hi = lo.to(_F32), hi.to(_F32)
        if x.a is not None or x.b is not None:
            c1 = lo if x.a is None else lo * x.a
            c2 = hi if x.a is None else hi * x.a
            if x.b is not None:
                c1, c2 = c1 + x.b, c2 + x.b
            lo, hi = _smin(c1, c2), _smax(c1, c2)
        den = hi - lo + 1e-9
        if x.a is None and x.b is None:
            return _Val(x.core, owned=x.owned, s=-lo, den=den)
        inv = 1.0 / den
        a = inv if x.a is None else x.a * inv
        b = (-lo * inv) if x.b is None else (x.b - lo) * inv
        return _Val(x.core, a, b, x.owned)

    def _normalize(self, x: _Val, ctx: _Ctx) -> _Val:
        if not x.plain:
            x = _Val(*_materialize_owned(x, ctx))
        xs = _stat_dtype(x.core)
        mean, std = xs.mean(), xs.std()  # as the reference computes them (bitwise equal statistics)
        if x.a is not None:
            mean = mean * x.a
            std = std * _sabs(x.a)
        if x.b is not None:
            mean = mean + x.b
        # the reference maps a NaN result to 0: zero spread (0/0) or non-finite statistics give
        # zeros. Selected with tensor ops on the scalars (no host read): a zero scale and shift
        # make the value 0 wherever X is finite (X's own inf/NaN entries stay NaN there).
        ok = torch.isfinite(mean) & torch.isfinite(std) & (std > 0)
        zero = torch.zeros((), dtype=std.dtype, device=std.device)
        if x.a is None and x.b is None:
            return _Val(x.core, owned=x.owned, s=torch.where(ok, -mean, zero),
                        den=torch.where(ok, std, torch.full_like(std, math.inf)))
        inv = torch.where(ok, 1.0 / std, zero)
        a = inv if x.a is None else x.a * inv
        b = (-mean * inv) if x.b is None else (x.b - mean) * inv
        return _Val(x.core, torch.where(ok, a, zero), torch.where(ok, b, zero), x.owned)

    # --- binary ---------------------------------------------------------------------------------
    def _binary(self, j: int, a: _Val, b: _Val, ctx: _Ctx) -> _Val:
        op, variant = self.genome.binary[j], self.variants[j]
        if op == _B_FIRST:
            return a
        if op == _B_SECOND:
            return b
        if op == _B_MATMUL:
            return self._contract(a, b, ctx)
        if op in (_B_EINSUM1, _B_EINSUM2):
            if variant == 0:   # same token count: contract tokens
                if op == _B_EINSUM1:
                    return self._contract(_t(a), b, ctx)       # A^T B
                return self._contract(_t(b), a, ctx)           # (A^T B)^T = B^T A
            if op == _B_EINSUM1:
                return self._contract(a, _t(b), ctx)           # A B^T
            return self._contract(b, _t(a), ctx)               # (A B^T)^T = B A^T
        x, ox = _materialize(a, ctx)
        y, oy = _materialize(b, ctx)
        if op in (_B_PRODUCT, _B_SUM):
            f_ = torch.Tensor.mul_ if op == _B_PRODUCT else torch.Tensor.add_
            f = torch.mul if op == _B_PRODUCT else torch.add
            if ctx.inplace:
                shape = _bshape(x.shape, y.shape)
                dt = torch.promote_types(x.dtype, y.dtype)
                for t, own, other in ((y, oy, x), (x, ox, y)):
                    if own and t.shape == shape and t.dtype == dt and _writable(t):
                        return _Val(f_(t, other), owned=True)
            return _Val(f(x, y, out=_scratch_for(ctx, x, y)), owned=True)
        if ctx.half and op not in (_B_CAT,):
            x, y = x.to(_F32), y.to(_F32)
        return _Val(BINARY_OPS[op].fn(x, y, variant), owned=True)

    def _contract(self, L: _Val, R: _Val, ctx: _Ctx) -> _Val:
        """``L @ R`` (torch.matmul semantics) of two values."""
        lrank = (L.chain[0].dim() if L.chain is not None else L.core.dim())
        rrank = (R.chain[0].dim() if R.chain is not None else R.core.dim())
        if lrank < 2 or rrank < 2:
            x, _ = _materialize(L, ctx)
            y, _ = _materialize(R, ctx)
            return _Val(_matmul(x, y, ctx), owned=True)
        if L.plain_or_chain and R.plain_or_chain:
            lf = L.chain if L.chain is not None else (L.core,)
            rf = R.chain if R.chain is not None else (R.core,)
            return _Val(None, chain=lf + rf)
        L, R = L.affine(), R.affine()
        if L.chain is not None:
            L = _Val(*_materialize_owned(L, ctx))
        if R.chain is not None:
            R = _Val(*_materialize_owned(R, ctx))
        XL, XR = L.core, R.core
        if L.a is not None or L.b is not None or R.a is not None or R.b is not None:
            out_numel = (math.prod(_bshape(tuple([_hint(d) for d in XL.shape[:-2]]),
                                           tuple([_hint(d) for d in XR.shape[:-2]])))
                         * _hint(XL.shape[-2]) * _hint(XR.shape[-1]))
            if not _absorbs(L, XR, out_numel):
                XL, own = _materialize(L, ctx)
                L = _Val(XL, owned=own)
            if not _absorbs(R, XL, out_numel):
                XR, own = _materialize(R, ctx)
                R = _Val(XR, owned=own)
        M = _matmul(XL, XR, ctx)
        if L.a is None and L.b is None and R.a is None and R.b is None:
            return _Val(M, owned=True)
        K = XL.shape[-1]
        acc = _F32 if ctx.half else M.dtype
        a = _mul(L.a, R.a)
        terms: List[Tensor] = []
        if R.b is not None:   # L (a_R X_R + b_R 1) -> b_R * rowsum(L)
            rs = XL.sum(dim=-1, keepdim=True, dtype=acc)
            terms.append(rs * _mul(L.a, R.b) if L.a is not None else rs * R.b)
        if L.b is not None:   # (a_L X_L + b_L 1) R -> b_L * colsum(R)
            cs = XR.sum(dim=-2, keepdim=True, dtype=acc)
            coef = _mul(L.b, R.a) if R.a is not None else L.b
            # a Python scalar rides along as ``alpha`` of the in-place add (one op less)
            terms.append((cs, coef) if isinstance(coef, float) else cs * coef)
        if L.b is not None and R.b is not None:
            terms.append(L.b * R.b * K)
        inplace = ctx.inplace
        if a is not None:
            M = M.mul_(a) if inplace else M * a
        for t in terms:
            t, alpha = t if isinstance(t, tuple) else (t, 1)
            if inplace and (not isinstance(t, Tensor) or _bshape(M.shape, t.shape) == tuple(M.shape)):
                M = M.add_(t, alpha=alpha) if alpha != 1 else M.add_(t)
            else:
                M = torch.add(M, t, alpha=alpha) if alpha != 1 else M + t
        return _Val(M, owned=True)


def _absorbs(P: _Val, other: Tensor, out_numel: int) -> bool:
    """Whether operand ``P``'s affine map is folded into its contraction with ``other`` as a rank-1
    correction (cheaper, in elements touched, than applying it to ``P``)."""
    if P.a is None and P.b is None:
        return False
    cost = (_numel(other) if P.b is not None else 0) + (out_numel if P.a is not None else 0)
    return cost < 2 * _numel(P.core)


def _once(v: _Val, ctx: _Ctx) -> _Val:
    """A value read by several consumers: chains evaluated once, nothing writable."""
    if v.chain is not None:
        t, _ = _materialize(v, ctx)
        return _Val(t)
    return v.shared()


def _materialize_owned(v: _Val, ctx: _Ctx):
    t, own = _materialize(v, ctx)
    return (t, None, None, own)


def _t(v: _Val) -> _Val:
    """Transpose of the last two dims (lazy for affine values and chains)."""
    if v.chain is not None:
        return _Val(None, v.a, v.b, False, tuple(f.transpose(-1, -2) for f in reversed(v.chain)))
    return _Val(v.core.transpose(-1, -2), v.a, v.b, v.owned, s=v.s, den=v.den)
