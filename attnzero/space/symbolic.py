"""Symbolic dimensions and shapes for static analysis of attention programs.

A dimension is a polynomial with integer coefficients over the symbols

* ``B`` -- batch size,
* ``h`` -- number of heads,
* ``N`` -- number of query tokens,
* ``M`` -- number of key/value tokens (only distinct from ``N`` when the analysis is asked to treat
  keys/values as spatially reduced; by default keys and values share ``N`` with the queries),
* ``d`` -- channels per head.

Dimensions are linear (``d``, ``2*d``, ``d + 1``, ``1``, ``192``); products of dimensions (numbers
of elements, FLOP counts) are general polynomials. Two dimensions are the *same* only when they
are the same polynomial: shapes that agree only numerically (``N == d == 64``) are not accepted,
so an analysed program never depends on a numerical coincidence of sizes.
"""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Tuple

SYMBOLS: Tuple[str, ...] = ('B', 'h', 'N', 'M', 'd')
_NSYM = len(SYMBOLS)
_ZERO_EXP: Tuple[int, ...] = (0,) * _NSYM
#: indices of the token symbols (``N`` and ``M``) in a monomial's exponent tuple
TOKEN_INDICES: Tuple[int, ...] = (SYMBOLS.index('N'), SYMBOLS.index('M'))


class Poly:
    """Immutable polynomial with integer coefficients over :data:`SYMBOLS`.

    Monomials are exponent tuples in the order of :data:`SYMBOLS`. Used both for symbolic
    dimensions (linear polynomials) and FLOP / element counts.
    """

    __slots__ = ('terms', '_hash')

    def __init__(self, terms: Mapping[Tuple[int, ...], int]) -> None:
        self.terms: Dict[Tuple[int, ...], int] = {m: c for m, c in terms.items() if c}
        self._hash: Optional[int] = None

    # construction -------------------------------------------------------------------------
    @staticmethod
    def const(c: int) -> 'Poly':
        return Poly({_ZERO_EXP: c})

    @staticmethod
    def sym(name: str) -> 'Poly':
        exp = [0] * _NSYM
        exp[SYMBOLS.index(name)] = 1
        return Poly({tuple(exp): 1})

    # arithmetic ---------------------------------------------------------------------------
    def __add__(self, other: 'Poly | int') -> 'Poly':
        other = _as_poly(other)
        out = dict(self.terms)
        for m, c in other.terms.items():
            out[m] = out.get(m, 0) + c
        return Poly(out)

    __radd__ = __add__

    def __sub__(self, other: 'Poly | int') -> 'Poly':
        return self + _as_poly(other) * -1

    def __mul__(self, other: 'Poly | int') -> 'Poly':
        other = _as_poly(other)
        out: Dict[Tuple[int, ...], int] = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                m = tuple(a + b for a, b in zip(m1, m2))
                out[m] = out.get(m, 0) + c1 * c2
        return Poly(out)

    __rmul__ = __mul__

    # comparison ---------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, int):
            other = Poly.const(other)
        return isinstance(other, Poly) and self.terms == other.terms

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self.terms.items()))
        return self._hash

    # queries ------------------------------------------------------------------------------
    @property
    def is_one(self) -> bool:
        return self.terms == {_ZERO_EXP: 1}

    @property
    def is_zero(self) -> bool:
        return not self.terms

    @property
    def constant(self) -> int:
        return self.terms.get(_ZERO_EXP, 0)

    @property
    def nonnegative(self) -> bool:
        return all(c >= 0 for c in self.terms.values())

    def depends_on_tokens(self) -> bool:
        """True if the polynomial contains ``N`` or ``M``."""
        return any(m[i] for m in self.terms for i in TOKEN_INDICES)

    def token_degree(self) -> int:
        """Highest total degree in the token symbols ``N`` and ``M`` of any monomial."""
        return max((sum(m[i] for i in TOKEN_INDICES) for m in self.terms), default=0)

    def degree_in(self, name: str) -> int:
        i = SYMBOLS.index(name)
        return max((m[i] for m in self.terms), default=0)

    def evaluate(self, **values: float) -> float:
        """Numerical value; every symbol that occurs must be given (``M`` defaults to ``N``)."""
        if 'M' not in values and 'N' in values:
            values['M'] = values['N']
        vals = [values.get(s) for s in SYMBOLS]
        total = 0.0
        for m, c in self.terms.items():
            term = float(c)
            for v, e in zip(vals, m):
                if e:
                    if v is None:
                        raise KeyError(f'no value given for symbol in {self}')
                    term *= v ** e
            total += term
        return total

    def __repr__(self) -> str:
        if not self.terms:
            return '0'
        parts = []
        for m in sorted(self.terms, key=lambda e: (-sum(e), [-x for x in e])):
            c = self.terms[m]
            factors = [(s if e == 1 else f'{s}^{e}') for s, e in zip(SYMBOLS, m) if e]
            if not factors:
                parts.append(str(c))
            elif c == 1:
                parts.append('*'.join(factors))
            else:
                parts.append(f'{c}*' + '*'.join(factors))
        return ' + '.join(parts).replace('+ -', '- ')


def _as_poly(x: 'Poly | int') -> Poly:
    return x if isinstance(x, Poly) else Poly.const(int(x))


Shape = Tuple[Poly, ...]

ONE = Poly.const(1)
ZERO = Poly.const(0)
SB = Poly.sym('B')
SH = Poly.sym('h')
SN = Poly.sym('N')
SM = Poly.sym('M')
SD = Poly.sym('d')


class ShapeError(ValueError):
    """A shape rule does not accept its symbolic input shapes."""


def numel(shape: Shape) -> Poly:
    """Number of elements of a symbolic shape."""
    out = ONE
    for s in shape:
        out = out * s
    return out


def fmt_shape(shape: Iterable[Poly]) -> str:
    return '(' + ', '.join(repr(s) for s in shape) + ')'


def broadcast(a: Shape, b: Shape) -> Shape:
    """Symbolic torch broadcasting: aligned from the right, dims equal or one of them ``1``."""
    n = max(len(a), len(b))
    pa = (ONE,) * (n - len(a)) + tuple(a)
    pb = (ONE,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(pa, pb):
        if x == y or y.is_one:
            out.append(x)
        elif x.is_one:
            out.append(y)
        else:
            raise ShapeError(f'cannot broadcast {fmt_shape(a)} with {fmt_shape(b)}')
    return tuple(out)
