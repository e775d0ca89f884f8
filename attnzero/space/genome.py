"""The genome: an attention formula as an immutable value, its text form, and its compiler.

A genome is ``(graph, unary lists, binary ops)``. Its canonical text is::

    <graph>:<unary list 0>;<unary list 1>;...:<binary 0>,<binary 1>,...

with operator *names*, ``-`` for an empty unary list and no ``no_op`` (dropped on construction).
``Genome.parse`` also accepts integer indices and ``no_op``. The original AttnZero config format
(``graph_type`` / ``unary_op`` / ``binary_op`` with operator indices) is read by
:meth:`Genome.from_attnzero_cfg` and written by :meth:`Genome.to_attnzero_cfg`; :func:`as_genome`
accepts any of the three forms.

Place in the space's module graph (one-way): ``symbolic`` < ``ops`` < ``graphs`` < ``cost`` <
``simplify``, ``fast``, ``masked`` < ``genome`` < ``fec`` < ``check`` < ``variation``.
``Genome.complexity`` and ``Genome.compile`` call down into ``cost``, ``simplify`` and ``fast``,
which take any :class:`~attnzero.space.graphs.GenomeProtocol` and never import this module (nor
does ``masked``, the token-masked evaluator the ``attnzero`` kernel calls for DynamicViT).
"""
from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .cost import Complexity, analyse
from .fast import BACKENDS, FastExecutor
from .graphs import GRAPHS, evaluate
from .ops import (BINARY_BY_NAME, BINARY_OPS, NO_OP, NUM_ORIGINAL_BINARY, NUM_ORIGINAL_UNARY,
                  UNARY_BY_NAME, UNARY_OPS)
from .simplify import simplify

__all__ = ['Genome', 'GenomeError', 'InvalidGenomeError', 'CompiledProgram', 'TRIAL_105',
           'TRIAL_140', 'SOFTMAX', 'ELU_LINEAR', 'RELU_LINEAR', 'REFERENCE_GENOMES', 'as_genome',
           'GenomeLike']


class GenomeError(ValueError):
    """Malformed genome (text or config): unknown graph/operator, wrong counts, bad index."""


class InvalidGenomeError(ValueError):
    """The genome is well-formed but its program is not (static shape analysis failed)."""


def _suggest(token: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(token, list(known), n=3, cutoff=0.6)
    return f' (did you mean {", ".join(map(repr, close))}?)' if close else ''


@dataclass(frozen=True)
class Genome:
    """Immutable attention program: graph type + one unary list per edge + one binary op per node.

    Construct with operator indices (``no_op`` entries are dropped, so equal programs compare
    equal), or use :meth:`parse` / :meth:`from_attnzero_cfg`.

    Attributes:
        graph: graph type, one of :data:`~attnzero.space.graphs.GRAPH_NAMES`.
        unary: unary operator indices per edge (a tuple of tuples).
        binary: binary operator index per node.
    """

    graph: str
    unary: Tuple[Tuple[int, ...], ...]
    binary: Tuple[int, ...]

    def __post_init__(self) -> None:
        if self.graph not in GRAPHS:
            raise GenomeError(f'unknown graph {self.graph!r}{_suggest(str(self.graph), GRAPHS)}; '
                              f'known: {", ".join(GRAPHS)}')
        g = GRAPHS[self.graph]
        unary = tuple(tuple(int(u) for u in lst) for lst in self.unary)
        binary = tuple(int(b) for b in self.binary)
        if len(unary) != g.n_unary:
            raise GenomeError(f'graph {self.graph} needs {g.n_unary} unary lists, got {len(unary)}')
        if len(binary) != g.n_binary:
            raise GenomeError(f'graph {self.graph} needs {g.n_binary} binary ops, got {len(binary)}')
        for i, lst in enumerate(unary):
            for p, u in enumerate(lst):
                if not 0 <= u < len(UNARY_OPS):
                    raise GenomeError(f'unary list {i}, item {p}: index {u} out of range '
                                      f'0..{len(UNARY_OPS) - 1}')
        for j, b in enumerate(binary):
            if not 0 <= b < len(BINARY_OPS):
                raise GenomeError(f'binary op {j}: index {b} out of range 0..{len(BINARY_OPS) - 1}')
        object.__setattr__(self, 'unary', tuple(tuple(u for u in lst if u != NO_OP) for lst in unary))
        object.__setattr__(self, 'binary', binary)

    # --- text ---------------------------------------------------------------------------------
    def to_string(self) -> str:
        """Canonical text; ``Genome.parse(g.to_string()) == g``."""
        lists = [','.join(UNARY_OPS[u].name for u in lst) or '-' for lst in self.unary]
        return f'{self.graph}:{";".join(lists)}:{",".join(BINARY_OPS[b].name for b in self.binary)}'

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f'Genome({self.to_string()!r})'

    @classmethod
    def parse(cls, text: str) -> 'Genome':
        """Parse genome text (operator names or integer indices; ``-`` or empty = empty list).

        Raises:
            GenomeError: naming the bad token, its place and its (1-based) column in ``text``.
        """
        if not isinstance(text, str):
            raise GenomeError(f'genome text must be a str, got {type(text).__name__}')
        parts = text.split(':')
        if len(parts) != 3:
            raise GenomeError(f"genome text {text!r}: expected '<graph>:<unary lists>:<binary ops>' "
                              f"(3 ':'-separated parts), got {len(parts)}")
        gname = parts[0].strip()
        if gname not in GRAPHS:
            raise GenomeError(f'unknown graph {gname!r} at column 1 of {text!r}'
                              f'{_suggest(gname, GRAPHS)}; known: {", ".join(GRAPHS)}')
        g = GRAPHS[gname]
        col = len(parts[0]) + 1
        lists = parts[1].split(';')
        if len(lists) != g.n_unary:
            raise GenomeError(f'graph {gname} needs {g.n_unary} unary lists separated by ";", '
                              f'got {len(lists)} in {parts[1]!r}')
        unary: List[Tuple[int, ...]] = []
        for i, lst in enumerate(lists):
            items: List[int] = []
            if lst.strip() not in ('', '-'):
                c = col
                for p, tok in enumerate(lst.split(',')):
                    items.append(_lookup(tok.strip(), 'unary', UNARY_BY_NAME, len(UNARY_OPS),
                                         f'unary list {i}, item {p}', c + len(tok) - len(tok.lstrip()),
                                         text))
                    c += len(tok) + 1
            unary.append(tuple(items))
            col += len(lst) + 1
        toks = parts[2].split(',')
        if len(toks) != g.n_binary:
            raise GenomeError(f'graph {gname} needs {g.n_binary} binary ops separated by ",", '
                              f'got {len(toks)} in {parts[2]!r}')
        binary: List[int] = []
        for j, tok in enumerate(toks):
            binary.append(_lookup(tok.strip(), 'binary', BINARY_BY_NAME, len(BINARY_OPS),
                                  f'binary op {j}', col + len(tok) - len(tok.lstrip()), text))
            col += len(tok) + 1
        return cls(gname, tuple(unary), tuple(binary))

    # --- original config format ---------------------------------------------------------------
    @classmethod
    def from_attnzero_cfg(cls, cfg: Mapping[str, Any]) -> 'Genome':
        """Read the original AttnZero format
        ``{'graph_type': 'i3n303', 'unary_op': [[16], [0, 13], ...], 'binary_op': [6, 3, 2]}``."""
        missing = [k for k in ('graph_type', 'unary_op', 'binary_op') if k not in cfg]
        if missing:
            raise GenomeError(f'AttnZero config lacks {missing}; got keys {sorted(cfg)}')
        unary = cfg['unary_op']
        if not isinstance(unary, Sequence) or any(not isinstance(x, Sequence) for x in unary):
            raise GenomeError(f"'unary_op' must be a list of lists of ints, got {unary!r}")
        return cls(str(cfg['graph_type']), tuple(tuple(_as_int(u, f'unary_op[{i}][{p}]')
                                                     for p, u in enumerate(lst))
                                               for i, lst in enumerate(unary)),
                   tuple(_as_int(b, f'binary_op[{j}]') for j, b in enumerate(cfg['binary_op'])))

    def to_attnzero_cfg(self) -> Dict[str, Any]:
        """The original config format (an empty list is written ``[0]``, as the reference does)."""
        return {'graph_type': self.graph,
                'unary_op': [list(lst) or [NO_OP] for lst in self.unary],
                'binary_op': list(self.binary)}

    # --- identity -------------------------------------------------------------------------------
    @property
    def hash(self) -> str:
        """Stable content hash: first 16 hex digits of sha256 of the canonical text."""
        return hashlib.sha256(self.to_string().encode('utf-8')).hexdigest()[:16]

    @property
    def uses_batch_global(self) -> bool:
        """True if an operator takes statistics over the whole batch (original normalisations)."""
        return any(UNARY_OPS[u].batch_global for lst in self.unary for u in lst)

    @property
    def is_original(self) -> bool:
        """True if only operators of the original AttnZero format are used."""
        return (all(u < NUM_ORIGINAL_UNARY for lst in self.unary for u in lst)
                and all(b < NUM_ORIGINAL_BINARY for b in self.binary))

    def op_names(self) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
        return (tuple(tuple(UNARY_OPS[u].name for u in lst) for lst in self.unary),
                tuple(BINARY_OPS[b].name for b in self.binary))

    def replace(self, graph: str | None = None, unary: Sequence[Sequence[int]] | None = None,
                binary: Sequence[int] | None = None) -> 'Genome':
        """A copy with some fields replaced."""
        return Genome(self.graph if graph is None else graph,
                      tuple(map(tuple, self.unary if unary is None else unary)),
                      tuple(self.binary if binary is None else binary))

    # --- analysis and compilation ------------------------------------------------------------
    def complexity(self, distinct_kv: bool = False) -> Complexity:
        """Static cost analysis (no execution; cached). See :mod:`attnzero.space.cost`.

        Args:
            distinct_kv: analyse keys/values with their own token count ``M`` (spatial reduction).
        """
        return analyse(self, distinct_kv)

    def compile(self, distinct_kv: bool = False, fast: bool = True,
                backend: str = 'eager') -> 'CompiledProgram':
        """A pure torch callable ``f(q, k, v) -> out`` on ``(B, heads, N, d)`` tensors.

        Quadratic genomes compile (softmax attention is one); invalid ones raise
        :class:`InvalidGenomeError`. Use ``distinct_kv=True`` when keys/values may have a token
        count different from the queries.

        Args:
            fast: run the simplified genome with the fast executor (:mod:`attnzero.space.fast`:
                algebraic simplification, affine maps folded into contractions, in-place work on
                internal intermediates, float32 accumulation for half inputs). ``False`` gives the
                reference evaluator (every operator out-of-place, exactly as written).
            backend: ``'eager'`` or ``'inductor'`` (fast path wrapped in
                ``torch.compile(dynamic=True)``; compiles on first call).
        """
        return CompiledProgram(self, distinct_kv, fast=fast, backend=backend)


#: a genome in any of its forms: ``Genome``, text (names or indices, ``no_op`` allowed), or an
#: original-format config mapping (``graph_type``, ``unary_op``, ``binary_op``)
GenomeLike = Union[Genome, str, Mapping[str, Any]]


def as_genome(genome: Optional[GenomeLike], default: Optional[Genome] = None) -> Genome:
    """Any genome form -> :class:`Genome`.

    * a ``Genome`` (or subclass) is returned as it is;
    * a ``str`` is parsed (:meth:`Genome.parse`);
    * a mapping (``dict``, mmengine ``ConfigDict``, ...) is read as the original config format
      (:meth:`Genome.from_attnzero_cfg`);
    * ``None`` gives ``default`` when one is given (the attention kernel passes Trial-105); with
      no default it is an error like any other type.

    Raises:
        GenomeError: malformed text or config (names the bad token).
        TypeError: anything else (a list, a number, ``None`` without a default, ...).
    """
    if isinstance(genome, Genome):
        return genome
    if genome is None and default is not None:
        return default
    if isinstance(genome, str):
        return Genome.parse(genome)
    if isinstance(genome, Mapping):
        return Genome.from_attnzero_cfg(genome)
    raise TypeError(f'not a genome: {type(genome).__name__} (give a Genome, genome text or an '
                    f'original-format cfg dict)')


def genome_problem(genome: Any) -> Optional[str]:
    """Why ``genome`` (text, original-format mapping or :class:`Genome`) is not a usable program,
    in one line; ``None`` when it parses and its static analysis runs. The check the command-line
    tools make before building anything (``--genome``, a config's ``genome=``)."""
    try:
        as_genome(genome).complexity()
    except Exception as e:  # GenomeError / InvalidGenomeError / TypeError / a malformed mapping
        return str(e)
    return None


def _as_int(x: Any, where: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int,)) and not (hasattr(x, '__index__')):
        raise GenomeError(f'{where}: expected an operator index (int), got {x!r}')
    return int(x)


def _lookup(tok: str, kind: str, by_name: Mapping[str, Any], n: int, where: str, column: int,
            text: str) -> int:
    column += 1  # report 1-based columns, as editors do
    if not tok:
        raise GenomeError(f'{where}: empty {kind} operator at column {column} of {text!r}')
    if tok.lstrip('-').isdigit():
        idx = int(tok)
        if not 0 <= idx < n:
            raise GenomeError(f'{where}: {kind} operator index {idx} out of range 0..{n - 1} '
                              f'(token {tok!r} at column {column} of {text!r})')
        return idx
    if tok not in by_name:
        raise GenomeError(f'{where}: unknown {kind} operator {tok!r} at column {column} of {text!r}'
                          f'{_suggest(tok, by_name)}')
    return by_name[tok].index


class CompiledProgram:
    """The torch program of a genome: ``out = program(q, k, v)``.

    Pure (no state, no parameters, inputs never modified), differentiable, device/dtype-agnostic;
    picklable (it holds only the genome and the statically chosen branches). The branch of every
    ``einsum1``/``einsum2`` is the one decided by the static analysis, so the computation never
    depends on numerical coincidences of sizes, and for a linear genome no intermediate has two
    token-sized dims.
    """

    def __init__(self, genome: Genome, distinct_kv: bool = False, fast: bool = True,
                 backend: str = 'eager') -> None:
        cx = genome.complexity(distinct_kv)
        if cx.kind == 'invalid':
            raise InvalidGenomeError(f'{genome.to_string()}: {cx}')
        if backend not in BACKENDS:
            raise ValueError(f'unknown backend {backend!r}; known: {BACKENDS}')
        self.genome = genome
        self.complexity = cx
        self.variants = cx.variants
        self.distinct_kv = distinct_kv
        self.fast = bool(fast)
        self.backend = backend
        self._executor = None
        self._compiled = None
        if self.fast:
            self._build()

    def _build(self) -> None:
        res = simplify(self.genome, self.distinct_kv)
        #: the genome the fast path runs (``genome`` after algebraic simplification)
        self.simplified = res.genome
        self.rewrites = res.applied
        self._executor = FastExecutor(res.genome, res.genome.complexity(self.distinct_kv).variants)

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state['_executor'] = None  # rebuilt on unpickling (pure function of the genome)
        state['_compiled'] = None
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.fast:
            self._build()

    def __call__(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        if self.fast:
            if self.backend == 'inductor':
                if self._compiled is None:
                    self._compiled = torch.compile(self._executor, dynamic=True)
                return self._compiled(q, k, v)
            return self._executor(q, k, v)
        return self.reference(q, k, v)

    def reference(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """The reference evaluator: every operator of the genome, out-of-place, as written."""
        genome, d = self.genome, q.shape[-1]

        def edge_fn(i: int, x: Tensor) -> Tensor:
            for u in genome.unary[i]:
                x = UNARY_OPS[u].fn(x, d)
            return x

        def node_fn(j: int, a: Tensor, b: Tensor) -> Tensor:
            return BINARY_OPS[genome.binary[j]].fn(a, b, self.variants[j])

        return evaluate(GRAPHS[genome.graph], {'q': q, 'k': k, 'v': v}, edge_fn, node_fn)

    def __repr__(self) -> str:
        mode = f'fast/{self.backend}' if self.fast else 'reference'
        return f'CompiledProgram({self.genome.to_string()!r}, {self.complexity.kind}, {mode})'


# --- published and reference genomes ----------------------------------------------------------
#: AttnZero Trial-105 (DeiT, PVT, Swin and the dense-prediction backbones)
TRIAL_105 = Genome.from_attnzero_cfg({'graph_type': 'i3n303',
                                      'unary_op': [[16], [0, 13], [0, 25], [6], [0], [25, 0]],
                                      'binary_op': [6, 3, 2]})
#: AttnZero Trial-140 (CSwin)
TRIAL_140 = Genome.from_attnzero_cfg({'graph_type': 'i3n302',
                                      'unary_op': [[16], [15], [0, 5], [9, 0], [20], [25]],
                                      'binary_op': [5, 5, 0]})
#: softmax attention softmax(Q K^T / sqrt(d)) V (quadratic)
SOFTMAX = Genome.parse('i3n2:scale;transpose;-;softmax:matmul,matmul')
#: linear attention with phi = ELU + 1 (Katharopoulos et al. 2020):
#: phi(Q) (phi(K)^T [V, 1]) -> numerator / (denominator + 1e-6)
ELU_LINEAR = Genome.parse('i3n303:elu;ones_aug;elu;-;-;homog_div:einsum1,matmul,second')
#: EfficientViT ReLU linear attention (V padded with ones, divide by the last channel)
RELU_LINEAR = Genome.parse('i3n303:relu;ones_aug;relu;-;-;homog_div:einsum1,matmul,second')

REFERENCE_GENOMES: Dict[str, Genome] = {
    'trial_105': TRIAL_105, 'trial_140': TRIAL_140, 'softmax': SOFTMAX,
    'elu_linear': ELU_LINEAR, 'relu_linear': RELU_LINEAR,
}
