"""Choosing the attention of each stage/block: names, genomes and per-family defaults.

Backbones never contain attention math; they build :class:`attnzero.attention.Attention` (tokens
``(B, N, C)``) or, for unusual token layouts, a bare kernel with :func:`make_kernel`.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from torch import nn

from attnzero.attention import ATTENTIONS, Attention, build_kernel
from attnzero.space import TRIAL_105, TRIAL_140, as_genome, mask_problem

AttnSpec = Union[str, Sequence[str]]
GenomeSpec = Union[None, str, Any, Sequence[Any]]


def per_stage(value: Any, n: int, name: str) -> Tuple[Any, ...]:
    """Broadcast one value to ``n`` stages, or check a per-stage sequence has length ``n``.

    Strings, dicts and ``None`` count as one value.
    """
    if value is None or isinstance(value, (str, dict)) or not isinstance(value, Sequence):
        return (value,) * n
    value = tuple(value)
    if len(value) != n:
        raise ValueError(f'{name}: expected one value or {n} values, got {len(value)}: {value!r}')
    return value


def _kernel_class(name: str) -> type:
    """The registered kernel class ``name``; a KeyError listing the known names otherwise."""
    if name not in ATTENTIONS:
        raise KeyError(f'unknown attention {name!r}; known: {sorted(ATTENTIONS)}')
    return ATTENTIONS[name]


def attention_is_linear(name: str, genome: Any = None) -> bool:
    """True if the registered kernel ``name`` has a cost linear in the number of tokens (for
    ``attnzero`` with a ``genome``: that genome's complexity; a malformed genome falls back to the
    class attribute and fails where the kernel is built)."""
    cls = _kernel_class(name)
    if name == 'attnzero' and genome is not None:
        try:
            return as_genome(genome).complexity().kind == 'linear'
        except (TypeError, ValueError):  # not a genome (GenomeError is a ValueError)
            pass
    return bool(getattr(cls, 'linear', True))


def attention_needs_full_kv(name: str) -> bool:
    """True if the registered kernel ``name`` needs keys and values at the query resolution (a
    shared-QK kernel such as ``lsh``): PVT stages then run it without spatial reduction."""
    return bool(getattr(_kernel_class(name), 'full_kv', False))


def attention_takes_token_mask(name: str, genome: Any = None) -> bool:
    """True if the registered kernel ``name`` takes token masks (``supports_token_mask``; token
    pruning such as DynamicViT). For ``attnzero`` it depends on the genome (default Trial-105):
    :func:`attnzero.space.mask_problem`; a malformed genome gives ``False`` here and fails where
    the kernel is built."""
    if not getattr(_kernel_class(name), 'supports_token_mask', False):
        return False
    if name == 'attnzero':
        try:
            return mask_problem(as_genome(genome, default=TRIAL_105)) is None
        except (TypeError, ValueError):
            return False
    return True


def attention_makes_windows(name: str) -> bool:
    """True if the registered kernel ``name`` cuts the grid into windows itself (``sepvit``): Swin
    stages then hand it the whole grid instead of their own shifted windows."""
    return bool(getattr(_kernel_class(name), 'own_windows', False))


def attention_supports_bias(name: str) -> bool:
    return bool(getattr(ATTENTIONS[name], 'supports_attn_bias', False))


def family_default_genome(family: str) -> Optional[Any]:
    """The genome the AttnZero paper used for a family: Trial-140 for CSwin, else the kernel's
    default (Trial-105, returned as ``None``)."""
    return TRIAL_140 if family == 'cswin' else None


def _genome_kw(attn: str, genome: Any) -> Dict[str, Any]:
    return {'genome': genome} if (genome is not None and attn == 'attnzero') else {}


def make_attention(dim: int, num_heads: int, attn: str = 'softmax', genome: Any = None,
                   qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0,
                   num_prefix_tokens: int = 0, sr_ratio: int = 1, v_branch: bool = True,
                   attn_kwargs: Optional[Dict[str, Any]] = None, head_dim: Optional[int] = None) -> nn.Module:
    """Build the shared :class:`attnzero.attention.Attention` module for one block (``head_dim``:
    q/k/v channels per head when not ``dim // num_heads``)."""
    kw = dict(attn_kwargs or {})
    kw.update(_genome_kw(attn, genome))
    return Attention(dim, num_heads=num_heads, attn=attn, qkv_bias=qkv_bias, attn_drop=attn_drop,
                     proj_drop=proj_drop, num_prefix_tokens=num_prefix_tokens, sr_ratio=sr_ratio,
                     v_branch=v_branch, head_dim=head_dim, **kw)


def make_kernel(attn: str, head_dim: int, num_heads: int, genome: Any = None,
                num_prefix_tokens: int = 0, v_branch: bool = True, attn_drop: float = 0.0,
                attn_kwargs: Optional[Dict[str, Any]] = None) -> nn.Module:
    """Build a bare kernel ``(B, heads, N, d)`` for blocks with their own token layout (CSwin)."""
    kw = dict(attn_kwargs or {})
    kw.update(_genome_kw(attn, genome))
    return build_kernel(attn, head_dim, num_heads, num_prefix_tokens=num_prefix_tokens,
                        v_branch=v_branch, attn_drop=attn_drop, **kw)


def resolve_stage_attn(attn: AttnSpec, genome: GenomeSpec, num_stages: int, family: str
                       ) -> Tuple[Tuple[str, ...], Tuple[Any, ...]]:
    """Per-stage attention names and genomes; ``genome=None`` takes the family default."""
    attns = per_stage(attn, num_stages, 'attn')
    for a in attns:
        if not isinstance(a, str):
            raise TypeError(f'attn must be a kernel name or one per stage, got {a!r}')
    if genome is not None and 'attnzero' not in attns:
        warnings.warn('genome given but no stage uses attn="attnzero"; it is ignored', stacklevel=3)
    if genome is None:
        genome = family_default_genome(family)
    genomes = per_stage(genome, num_stages, 'genome')
    return attns, genomes


def drop_path_rates(rate: float, n: int) -> list:
    """Stochastic-depth rates rising linearly from 0 to ``rate`` over ``n`` blocks (pure Python, so
    models can be built on the ``meta`` device)."""
    if n <= 1:
        return [0.0] * n
    return [rate * i / (n - 1) for i in range(n)]
