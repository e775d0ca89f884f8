"""The AttnZero computation graphs: small DAGs over the inputs ``q``, ``k``, ``v``.

A graph has ``n_unary`` *edges* and ``n_binary`` *nodes*. Edge ``i`` applies the ``i``-th unary
list ``f_i`` of a genome to its source -- an input (``'q'``, ``'k'``, ``'v'``), the output of an
earlier node (``'b0'``, ``'b1'``, ...) or the output of an earlier edge (``'e5'``: i3n402 applies
``f6`` on top of ``f5(B2)``). Node ``j`` applies the ``j``-th binary operator ``⊗_j`` to its two
edges. The last node is the output.

Definitions (``B1``, ``B2``, ``B3`` of the paper are nodes ``b0``, ``b1``, ``b2``)::

    i3n2:   B1 = ⊗0(f0(Q), f1(K)); out = ⊗1(f3(B1), f2(V))
    i3n301: B1 = ⊗0(f0(Q), f1(K)); B2 = ⊗1(f3(B1), f2(V)); out = ⊗2(f5(B2), f4(B1))
    i3n302: B1 = ⊗0(f0(K), f1(V)); B2 = ⊗1(f2(V), f3(B1)); out = ⊗2(f4(Q), f5(B2))
    i3n303: B1 = ⊗0(f0(K), f1(V)); B2 = ⊗1(f2(Q), f3(B1)); out = ⊗2(f4(Q), f5(B2))
    i3n304: B1 = ⊗0(f0(K), f1(V)); B2 = ⊗1(f2(Q), f3(B1)); out = ⊗2(f4(V), f5(B2))
    i3n305: B1 = ⊗0(f0(K), f1(V)); B2 = ⊗1(f2(Q), f3(V));  out = ⊗2(f4(B1), f5(B2))
    i3n401: B1 = ⊗0(f0(K), f1(V)); B2 = ⊗1(f2(Q), f3(K)); B3 = ⊗2(f4(Q), f5(B1));
            out = ⊗3(f6(B2), f7(B3))
    i3n402: B1 = ⊗0(f0(K), f1(V)); B2 = ⊗1(f2(Q), f3(B1)); B3 = ⊗2(f4(V), f5(B2));
            out = ⊗3(f6(f5(B2)), f7(B3))

Values flow functionally (operators are pure), so a value feeding two edges (i3n301's ``B1``) is
never shared mutably: each edge gets its own result.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Protocol, Sequence, Tuple, TypeVar

__all__ = ['Graph', 'Node', 'GRAPHS', 'GRAPH_NAMES', 'evaluate', 'GenomeProtocol']

T = TypeVar('T')


class GenomeProtocol(Protocol):
    """What the modules below :mod:`attnzero.space.genome` need of a genome: a program on one of
    these graphs (graph name, unary operator indices per edge, binary operator index per node),
    hashable, and :meth:`replace` to build a rewritten copy.

    :class:`attnzero.space.Genome` is the implementation. The static analysis
    (:mod:`~attnzero.space.cost`), the simplifier (:mod:`~attnzero.space.simplify`) and the fast
    executor (:mod:`~attnzero.space.fast`) are typed with this protocol instead of importing
    ``Genome``: ``genome.py`` imports them (``Genome.complexity``, ``Genome.compile``), so they
    must not import it back.
    """

    @property
    def graph(self) -> str: ...

    @property
    def unary(self) -> Tuple[Tuple[int, ...], ...]: ...

    @property
    def binary(self) -> Tuple[int, ...]: ...

    def __hash__(self) -> int: ...

    def replace(self, graph: Optional[str] = None, unary: Optional[Sequence[Sequence[int]]] = None,
                binary: Optional[Sequence[int]] = None) -> 'GenomeProtocol': ...


@dataclass(frozen=True)
class Node:
    """Binary node: ``⊗_binary(edge[left], edge[right])``."""

    left: int
    right: int


@dataclass(frozen=True)
class Graph:
    """A computation graph.

    Attributes:
        name: graph type as in the original format (``'i3n303'``).
        sources: ``sources[i]`` is the source of edge ``i`` (``'q'``, ``'k'``, ``'v'``, ``'bJ'``
            for node ``J`` or ``'eI'`` for edge ``I``).
        nodes: binary nodes in evaluation order; the last one is the output.
    """

    name: str
    sources: Tuple[str, ...]
    nodes: Tuple[Node, ...]

    @property
    def n_unary(self) -> int:
        return len(self.sources)

    @property
    def n_binary(self) -> int:
        return len(self.nodes)

    @property
    def arity(self) -> Tuple[int, int]:
        """``(number of unary lists, number of binary ops)``."""
        return self.n_unary, self.n_binary

    def describe(self) -> str:
        names = {'q': 'Q', 'k': 'K', 'v': 'V'}

        def src(s: str) -> str:
            if s in names:
                return names[s]
            if s[0] == 'b':
                return f'B{int(s[1:]) + 1}'
            return edge(int(s[1:]))

        def edge(i: int) -> str:
            return f'f{i}({src(self.sources[i])})'

        lines = []
        for j, n in enumerate(self.nodes):
            lhs = 'out' if j == len(self.nodes) - 1 else f'B{j + 1}'
            lines.append(f'{lhs} = ⊗{j}({edge(n.left)}, {edge(n.right)})')
        return '; '.join(lines)


def _g(name: str, sources: str, nodes: Tuple[Tuple[int, int], ...]) -> Graph:
    return Graph(name, tuple(sources.split()), tuple(Node(a, b) for a, b in nodes))


GRAPHS: Dict[str, Graph] = {g.name: g for g in (
    _g('i3n2', 'q k v b0', ((0, 1), (3, 2))),
    _g('i3n301', 'q k v b0 b0 b1', ((0, 1), (3, 2), (5, 4))),
    _g('i3n302', 'k v v b0 q b1', ((0, 1), (2, 3), (4, 5))),
    _g('i3n303', 'k v q b0 q b1', ((0, 1), (2, 3), (4, 5))),
    _g('i3n304', 'k v q b0 v b1', ((0, 1), (2, 3), (4, 5))),
    _g('i3n305', 'k v q v b0 b1', ((0, 1), (2, 3), (4, 5))),
    _g('i3n401', 'k v q k q b0 b1 b2', ((0, 1), (2, 3), (4, 5), (6, 7))),
    _g('i3n402', 'k v q b0 v b1 e5 b2', ((0, 1), (2, 3), (4, 5), (6, 7))),
)}
GRAPH_NAMES: Tuple[str, ...] = tuple(GRAPHS)


def evaluate(graph: Graph, inputs: Dict[str, T], edge_fn: Callable[[int, T], T],
             node_fn: Callable[[int, T, T], T]) -> T:
    """Evaluate ``graph`` generically.

    Used both for tensors (compiled programs) and for symbolic shapes (static analysis).

    Args:
        graph: the graph.
        inputs: values of ``'q'``, ``'k'``, ``'v'``.
        edge_fn: ``edge_fn(i, x)`` applies the ``i``-th unary list to ``x``.
        node_fn: ``node_fn(j, a, b)`` applies the ``j``-th binary operator.
    """
    nodes: Dict[int, T] = {}
    edges: Dict[int, T] = {}
    for j, n in enumerate(graph.nodes):
        nodes[j] = node_fn(j, _edge(graph, n.left, inputs, nodes, edges, edge_fn),
                           _edge(graph, n.right, inputs, nodes, edges, edge_fn))
    return nodes[len(graph.nodes) - 1]


def _edge(graph: Graph, i: int, inputs: Dict[str, T], nodes: Dict[int, T], edges: Dict[int, T],
          edge_fn: Callable[[int, T], T]) -> T:
    """Value of edge ``i`` (computed once, memoised in ``edges``).

    A module-level function rather than a closure calling itself: such a closure is a reference
    cycle (function -> cell -> function) that would keep ``nodes``/``edges`` -- every intermediate
    tensor and the output -- alive after the call until the garbage collector happens to run."""
    if i not in edges:
        s = graph.sources[i]
        if s[0] == 'b':
            x = nodes[int(s[1:])]
        elif s[0] == 'e':
            x = _edge(graph, int(s[1:]), inputs, nodes, edges, edge_fn)
        else:
            x = inputs[s]
        edges[i] = edge_fn(i, x)
    return edges[i]
