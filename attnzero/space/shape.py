"""The ViT's shape as genes beside the attention genome (AutoFormer / ViT-Slim style joint search).

A :class:`ViTShape` is a plain ViT (DeiT layout: patch embedding, cls token, ``depth`` pre-norm
blocks) described by its embedding width, and per block the number of heads and the MLP ratio.
As in AutoFormer, a block's attention works at ``heads * head_dim`` channels (``head_dim`` fixed by
the space: 64 in AutoFormer), so the heads gene changes the q/k/v width; DeiT-T (192 channels,
3 heads of 64) is the case ``heads * head_dim == embed_dim``.

Canonical text (``ViTShape.parse(s.to_string()) == s``)::

    e192:hd64:h3,3,3,3,3,3,3,3,3,3,3,3:r4,4,4,4,4,4,4,4,4,4,4,4      # DeiT-T

A :class:`ShapeSpace` is a named set of choices (:data:`SHAPE_SPACES`): ``autoformer_t`` at full
size and ``proxy``, the same structure scaled down for CPU search. :class:`JointGenome` pairs a
shape with an attention :class:`~attnzero.space.genome.Genome`; its text is
``'<shape text>|<genome text>'`` and its hash the first 16 hex digits of that text's sha256, like a
genome's.

Parameters and multiply-accumulates are computed analytically at the space's full-size setting
(:func:`vit_params`, :func:`vit_macs`; the counting convention of :mod:`attnzero.flops`: matrix
products and convolutions only), so a search can use them as objectives without building a model.
"""
from __future__ import annotations

import hashlib
from decimal import ROUND_CEILING, Decimal, localcontext
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from .genome import Genome, as_genome
from .variation import DEFAULT_DISTRIBUTION, SpaceDistribution, VariationError
from .variation import crossover as genome_crossover
from .variation import mutate as genome_mutate
from .variation import sample as genome_sample

__all__ = ['ViTShape', 'ShapeSpace', 'ShapeError', 'SHAPE_SPACES', 'DEIT_T', 'AUTOFORMER_T', 'JointGenome',
           'vit_params', 'vit_macs', 'SHAPE_MUTATIONS', 'ratio_for_hidden']


class ShapeError(ValueError):
    """A shape text or value that is not a ViT shape (names the bad part)."""


def _fmt_ratio(r: float) -> str:
    """``r`` as text: ``%g`` (``2``, ``3.5``) when that reads back as ``r``, else the shortest text
    that does (``repr``), so that a shape's text always parses back to the same shape."""
    short = f'{float(r):g}'
    return short if float(short) == float(r) else repr(float(r))


def ratio_for_hidden(embed_dim: int, hidden: int) -> float:
    """The MLP ratio with the fewest significant digits that gives ``hidden`` units at width
    ``embed_dim`` (``int(embed_dim * ratio) == hidden``, as :meth:`ViTShape.mlp_hidden` and the
    models count them): e.g. 37 units at width 48 -> 0.78."""
    if int(embed_dim) < 1 or int(hidden) < 1:
        raise ShapeError(f'{hidden} hidden units at width {embed_dim}: both must be >= 1')
    exact = Decimal(int(hidden)) / Decimal(int(embed_dim))
    for digits in range(1, 30):
        with localcontext() as ctx:
            ctx.prec, ctx.rounding = digits, ROUND_CEILING
            r = float(+exact)
        if int(embed_dim * r) == hidden:
            return r
    raise ShapeError(f'no MLP ratio gives {hidden} hidden units at width {embed_dim}')  # pragma: no cover


class _TextIdentity:
    """``str()`` and ``hash`` (first 16 hex digits of the sha256 of the canonical text, as a
    genome's) of a value with a canonical ``to_string()``."""

    def to_string(self) -> str:  # pragma: no cover - always overridden
        raise NotImplementedError

    def __str__(self) -> str:
        return self.to_string()

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_string().encode('utf-8')).hexdigest()[:16]


@dataclass(frozen=True)
class ViTShape(_TextIdentity):
    """A plain ViT's shape: ``embed_dim``, per-block ``num_heads`` and ``mlp_ratio`` (same length,
    the depth), and the per-head q/k/v width ``head_dim``."""

    embed_dim: int
    num_heads: Tuple[int, ...]
    mlp_ratio: Tuple[float, ...]
    head_dim: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, 'num_heads', tuple(int(h) for h in self.num_heads))
        object.__setattr__(self, 'mlp_ratio', tuple(float(r) for r in self.mlp_ratio))
        if int(self.embed_dim) < 1:
            raise ShapeError(f'embed_dim={self.embed_dim}: must be >= 1')
        if int(self.head_dim) < 1:
            raise ShapeError(f'head_dim={self.head_dim}: must be >= 1')
        if not self.num_heads:
            raise ShapeError('a ViT shape needs at least one block')
        if len(self.num_heads) != len(self.mlp_ratio):
            raise ShapeError(f'{len(self.num_heads)} per-block head counts but {len(self.mlp_ratio)} MLP ratios')
        for i, h in enumerate(self.num_heads):
            if h < 1:
                raise ShapeError(f'num_heads[{i}]={h}: must be >= 1')
        for i, r in enumerate(self.mlp_ratio):
            if not r > 0 or int(self.embed_dim * r) < 1:
                raise ShapeError(f'mlp_ratio[{i}]={r}: must give at least one hidden unit')

    @property
    def depth(self) -> int:
        return len(self.num_heads)

    def mlp_hidden(self, i: int) -> int:
        """Hidden units of block ``i``'s MLP (``int(embed_dim * ratio)``, as timm's ViT)."""
        return int(self.embed_dim * self.mlp_ratio[i])

    def attn_dim(self, i: int) -> int:
        """q/k/v channels of block ``i`` (``heads * head_dim``)."""
        return self.num_heads[i] * self.head_dim

    def to_string(self) -> str:
        return (f'e{self.embed_dim}:hd{self.head_dim}:h{",".join(map(str, self.num_heads))}'
                f':r{",".join(_fmt_ratio(r) for r in self.mlp_ratio)}')

    @classmethod
    def parse(cls, text: str) -> 'ViTShape':
        """Parse the canonical text; raises :class:`ShapeError` naming the bad part."""
        if isinstance(text, ViTShape):
            return text
        if not isinstance(text, str):
            raise ShapeError(f'a ViT shape is text like "e192:hd64:h3,3:r4,4", got {type(text).__name__}')
        parts = text.strip().split(':')
        want = ('e', 'hd', 'h', 'r')
        if len(parts) != 4 or not all(p.startswith(w) for p, w in zip(parts, want)):
            raise ShapeError(f'bad ViT shape {text!r}: expected e<width>:hd<head dim>:h<heads,...>:r<ratios,...>')
        try:
            embed = int(parts[0][1:])
            head_dim = int(parts[1][2:])
        except ValueError:
            raise ShapeError(f'bad ViT shape {text!r}: width and head dim must be integers') from None
        heads, ratios = [], []
        for tok in parts[2][1:].split(','):
            try:
                heads.append(int(tok))
            except ValueError:
                raise ShapeError(f'bad ViT shape {text!r}: head count {tok!r} is not an integer') from None
        for tok in parts[3][1:].split(','):
            try:
                ratios.append(float(tok))
            except ValueError:
                raise ShapeError(f'bad ViT shape {text!r}: MLP ratio {tok!r} is not a number') from None
        return cls(embed, tuple(heads), tuple(ratios), head_dim)

    @classmethod
    def with_hidden(cls, embed_dim: int, num_heads: Sequence[int], mlp_hidden: Sequence[int],
                    head_dim: int = 64) -> 'ViTShape':
        """The shape with these per-block hidden unit counts (any integers, e.g. of a slimmed
        model), each written as the shortest ratio that gives it (:func:`ratio_for_hidden`)."""
        return cls(embed_dim, tuple(num_heads), tuple(ratio_for_hidden(embed_dim, h) for h in mlp_hidden),
                   head_dim)

    @classmethod
    def uniform(cls, embed_dim: int, depth: int, num_heads: int, mlp_ratio: float, head_dim: int = 64) -> 'ViTShape':
        return cls(embed_dim, (num_heads,) * depth, (mlp_ratio,) * depth, head_dim)


#: DeiT-T (Touvron et al. 2021): 192 channels, 12 blocks of 3 heads of 64, MLP ratio 4 (5.7M params)
DEIT_T = ViTShape.uniform(192, 12, 3, 4.0)
#: AutoFormer-T as released (microsoft/Cream, ``AutoFormer/experiments/subnet/AutoFormer-T.yaml``,
#: the RETRAIN block): 13 blocks at width 192; 5.7M params published. Three of its blocks use MLP
#: ratio 3.0, outside the {3.5, 4} the paper's tiny space lists, so the ``autoformer_t`` space below
#: includes 3.0.
AUTOFORMER_T = ViTShape(192, (3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 3, 3),
                        (3.5, 3.5, 3.0, 3.5, 3.0, 3.0, 4.0, 4.0, 3.5, 4.0, 3.5, 4.0, 3.5), 64)

#: the kinds of shape mutation (:meth:`ShapeSpace.mutate`)
SHAPE_MUTATIONS = ('embed', 'depth', 'heads', 'ratio')


@dataclass(frozen=True)
class ShapeSpace:
    """A named set of shape choices and the full-size setting its costs are computed at
    (``img_size``, ``patch_size``, ``num_classes``: 224, 16, 1000)."""

    name: str
    embed_dims: Tuple[int, ...]
    depths: Tuple[int, ...]
    num_heads: Tuple[int, ...]
    mlp_ratios: Tuple[float, ...]
    head_dim: int
    img_size: int = 224
    patch_size: int = 16
    num_classes: int = 1000

    def problem(self, shape: ViTShape) -> Optional[str]:
        """Why ``shape`` is not a point of this space (``None``: it is)."""
        if shape.head_dim != self.head_dim:
            return f'head_dim {shape.head_dim} is not the space\'s {self.head_dim}'
        if shape.embed_dim not in self.embed_dims:
            return f'embed_dim {shape.embed_dim} not in {list(self.embed_dims)}'
        if shape.depth not in self.depths:
            return f'depth {shape.depth} not in {list(self.depths)}'
        for i, h in enumerate(shape.num_heads):
            if h not in self.num_heads:
                return f'block {i}: {h} heads not in {list(self.num_heads)}'
        for i, r in enumerate(shape.mlp_ratio):
            if r not in self.mlp_ratios:
                return f'block {i}: MLP ratio {_fmt_ratio(r)} not in {[_fmt_ratio(x) for x in self.mlp_ratios]}'
        return None

    def contains(self, shape: ViTShape) -> bool:
        return self.problem(shape) is None

    def check(self, shape: Union[str, ViTShape]) -> ViTShape:
        """``shape`` parsed and checked to be a point of the space (raises :class:`ShapeError`)."""
        s = ViTShape.parse(shape)
        why = self.problem(s)
        if why:
            raise ShapeError(f'{s.to_string()!r} is not in the {self.name!r} space: {why}')
        return s

    def size(self) -> int:
        """Number of distinct shapes in the space."""
        per_block = len(self.num_heads) * len(self.mlp_ratios)
        return len(self.embed_dims) * sum(per_block ** d for d in self.depths)

    def sample(self, rng: np.random.Generator) -> ViTShape:
        depth = int(rng.choice(self.depths))
        return ViTShape(int(rng.choice(self.embed_dims)),
                        tuple(int(rng.choice(self.num_heads)) for _ in range(depth)),
                        tuple(float(rng.choice(self.mlp_ratios)) for _ in range(depth)), self.head_dim)

    def _block(self, rng: np.random.Generator) -> Tuple[int, float]:
        return int(rng.choice(self.num_heads)), float(rng.choice(self.mlp_ratios))

    def mutate(self, shape: ViTShape, rng: np.random.Generator, kinds: Optional[Sequence[str]] = None) -> ViTShape:
        """A different shape of the space, one gene away: ``embed`` (another width), ``depth`` (a
        block added at the end, a copy of the last one, or the last removed), ``heads`` or
        ``ratio`` (of one block). Raises :class:`VariationError` if no kind can change anything."""
        kinds = tuple(kinds or SHAPE_MUTATIONS)
        bad = set(kinds) - set(SHAPE_MUTATIONS)
        if bad:
            raise ValueError(f'unknown shape mutations {sorted(bad)}; known: {SHAPE_MUTATIONS}')
        s = self.check(shape)
        for _ in range(100):
            kind = kinds[int(rng.integers(len(kinds)))]
            heads, ratios, embed = list(s.num_heads), list(s.mlp_ratio), s.embed_dim
            if kind == 'embed':
                embed = int(rng.choice(self.embed_dims))
            elif kind == 'depth':
                depth = int(rng.choice(self.depths))
                while len(heads) < depth:
                    heads.append(heads[-1])
                    ratios.append(ratios[-1])
                heads, ratios = heads[:depth], ratios[:depth]
            elif kind == 'heads':
                heads[int(rng.integers(len(heads)))] = int(rng.choice(self.num_heads))
            else:
                ratios[int(rng.integers(len(ratios)))] = float(rng.choice(self.mlp_ratios))
            child = ViTShape(embed, tuple(heads), tuple(ratios), s.head_dim)
            if child != s:
                return child
        raise VariationError(f'no mutation of {s} within the {self.name!r} space in 100 tries')

    def crossover(self, a: ViTShape, b: ViTShape, rng: np.random.Generator) -> ViTShape:
        """Uniform crossover: width and depth from either parent, each block's genes from either
        parent's block at the same index (the longer parent's beyond the shorter one). The child
        differs from both parents; raises :class:`VariationError` if none does (e.g. equal parents)."""
        a, b = self.check(a), self.check(b)
        if a == b:
            raise VariationError(f'crossover of identical shapes {a}')
        for _ in range(100):
            embed = a.embed_dim if rng.random() < 0.5 else b.embed_dim
            depth = a.depth if rng.random() < 0.5 else b.depth
            heads, ratios = [], []
            for i in range(depth):
                pa, pb = (a if i < a.depth else b), (b if i < b.depth else a)
                pick_h, pick_r = (pa if rng.random() < 0.5 else pb), (pa if rng.random() < 0.5 else pb)
                heads.append(pick_h.num_heads[i])
                ratios.append(pick_r.mlp_ratio[i])
            child = ViTShape(embed, tuple(heads), tuple(ratios), a.head_dim)
            if child != a and child != b:
                return child
        raise VariationError(f'no child of {a} and {b} different from both in 100 tries')

    def params(self, shape: ViTShape, genome: Union[None, str, Genome] = None) -> int:
        return vit_params(shape, genome, self.img_size, self.patch_size, self.num_classes)

    def macs(self, shape: ViTShape, genome: Union[None, str, Genome] = None) -> float:
        return vit_macs(shape, genome, self.img_size, self.patch_size, self.num_classes)


#: the named shape spaces. ``autoformer_t``: AutoFormer's tiny space (embed {192, 216, 240}, depth
#: {12, 13, 14}, heads {3, 4}, MLP ratio {3.5, 4} -- with 3.0 added so that the released
#: AutoFormer-T is a point; head width 64); DeiT-T and AutoFormer-T are points of it. ``proxy``:
#: the same structure scaled to a search proxy's DeiT (the ``scenes-v3`` proxy's: width 48, 4 blocks
#: of 2 heads of 24 channels, MLP ratio 2, a point of it), for search on CPU. Both compute parameters and MACs at
#: full size (224 px, patch 16, 1000 classes), whatever size the proxy trains at.
SHAPE_SPACES: Dict[str, ShapeSpace] = {
    'autoformer_t': ShapeSpace('autoformer_t', (192, 216, 240), (12, 13, 14), (3, 4), (3.0, 3.5, 4.0), 64),
    'proxy': ShapeSpace('proxy', (32, 40, 48), (3, 4, 5), (1, 2), (1.5, 2.0), 24),
}


# ---- analytic cost -----------------------------------------------------------------------------
def _kernel(genome: Union[None, str, Genome]) -> Optional[Genome]:
    return None if genome is None or genome == 'softmax' else as_genome(genome)


def vit_params(shape: ViTShape, genome: Union[None, str, Genome] = None, img_size: int = 224,
               patch_size: int = 16, num_classes: int = 1000, in_chans: int = 3,
               dwc_kernel: int = 3) -> int:
    """Parameters of the ViT of ``shape`` with softmax attention (``genome=None``) or with the
    AttnZero module of ``genome`` (the genome has no parameters; its depthwise-conv branch on V has
    ``k*k + 1`` per q/k/v channel), as :class:`attnzero.models.DeiT` builds it (q/k/v and output
    projections with biases, pre-norm LayerNorms, cls token, absolute position embedding, a linear
    classifier on the final norm)."""
    C = shape.embed_dim
    n_tok = (img_size // patch_size) ** 2 + 1
    total = in_chans * patch_size * patch_size * C + C        # patch embedding (conv)
    total += C + n_tok * C                                     # cls token, position embedding
    for i in range(shape.depth):
        a, hid = shape.attn_dim(i), shape.mlp_hidden(i)
        total += 2 * 2 * C                                     # two LayerNorms
        total += C * 3 * a + 3 * a + a * C + C                 # qkv, proj
        total += C * hid + hid + hid * C + C                   # MLP
        if _kernel(genome) is not None:
            total += a * dwc_kernel * dwc_kernel + a           # DWC on V
    total += 2 * C                                             # final norm
    if num_classes:
        total += C * num_classes + num_classes
    return int(total)


def vit_macs(shape: ViTShape, genome: Union[None, str, Genome] = None, img_size: int = 224,
             patch_size: int = 16, num_classes: int = 1000, in_chans: int = 3,
             dwc_kernel: int = 3) -> float:
    """Multiply-accumulates of one image's forward (the papers' "FLOPs"; matrix products and
    convolutions only, as :mod:`attnzero.flops`). The attention kernel's own products: ``QK^T`` and
    ``AV`` for softmax, the genome's static cost (:meth:`Genome.complexity`) otherwise, plus its
    depthwise conv on V."""
    C = shape.embed_dim
    n_patch = (img_size // patch_size) ** 2
    N = n_patch + 1
    g = _kernel(genome)
    total = float(n_patch * in_chans * patch_size * patch_size * C)
    for i in range(shape.depth):
        a, hid, h = shape.attn_dim(i), shape.mlp_hidden(i), shape.num_heads[i]
        total += N * C * 3 * a + N * a * C + 2 * N * C * hid
        if g is None:
            total += 2.0 * h * N * N * shape.head_dim
        else:
            total += g.complexity().flops(N, shape.head_dim, heads=h)
            total += n_patch * a * dwc_kernel * dwc_kernel
    if num_classes:
        total += C * num_classes
    return total


# ---- the joint genome ------------------------------------------------------------------------------
@dataclass(frozen=True)
class JointGenome(_TextIdentity):
    """A ViT shape and the attention genome every block uses."""

    shape: ViTShape
    attention: Genome

    def to_string(self) -> str:
        return f'{self.shape.to_string()}|{self.attention.to_string()}'

    @classmethod
    def parse(cls, text: str) -> 'JointGenome':
        if isinstance(text, JointGenome):
            return text
        if not isinstance(text, str) or text.count('|') != 1:
            raise ShapeError(f'a joint genome is "<shape>|<attention genome>", got {text!r}')
        shape, attention = text.split('|')
        return cls(ViTShape.parse(shape), Genome.parse(attention.strip()))

    @staticmethod
    def sample(space: ShapeSpace, rng: np.random.Generator,
               dist: SpaceDistribution = DEFAULT_DISTRIBUTION, allow_quadratic: bool = False) -> 'JointGenome':
        return JointGenome(space.sample(rng), genome_sample(rng, dist, allow_quadratic=allow_quadratic))

    def mutate(self, space: ShapeSpace, rng: np.random.Generator, p_shape: float = 0.5,
               dist: SpaceDistribution = DEFAULT_DISTRIBUTION, allow_quadratic: bool = False) -> 'JointGenome':
        """One mutation of the shape (probability ``p_shape``) or of the attention genome; if the
        part drawn cannot change (:class:`VariationError`), the other part is mutated instead."""
        def shape() -> 'JointGenome':
            return JointGenome(space.mutate(self.shape, rng), self.attention)

        def attention() -> 'JointGenome':
            return JointGenome(self.shape, genome_mutate(self.attention, rng, dist, allow_quadratic=allow_quadratic))

        first, second = (shape, attention) if rng.random() < p_shape else (attention, shape)
        try:
            return first()
        except VariationError:
            return second()

    def crossover(self, other: 'JointGenome', space: ShapeSpace, rng: np.random.Generator,
                  allow_quadratic: bool = False) -> 'JointGenome':
        """Shapes and attention genomes crossed separately; a part on which the parents agree (or
        whose graphs differ in arity) is inherited from either parent."""
        shape = self.shape
        if self.shape != other.shape:
            try:
                shape = space.crossover(self.shape, other.shape, rng)
            except VariationError:  # one parent's blocks extend the other's: nothing to mix
                shape = self.shape if rng.random() < 0.5 else other.shape
        attention = self.attention if rng.random() < 0.5 else other.attention
        if self.attention != other.attention:
            try:
                attention = genome_crossover(self.attention, other.attention, rng,
                                             allow_quadratic=allow_quadratic)
            except (ValueError, VariationError):
                pass
        child = JointGenome(shape, attention)
        if child in (self, other):
            raise VariationError(f'no child of {self} and {other} different from both')
        return child
