"""AttnZero attention -- Li et al., "AttnZero: Efficient Attention Discovery for Vision
Transformers", ECCV 2024.

The token mixer is a searched computation graph (a :class:`attnzero.space.Genome`) compiled to a
pure function ``f(q, k, v) -> (B, heads, N, d)``; the module around it adds, as the paper's
reference module does, a depthwise 3x3 conv of V on the H x W grid to the output (prefix tokens
skipped; CSwin passes ``v_branch=False`` and uses its LePE instead)::

    out = graph(Q, K, V) + DWC(V)

Default genome: the paper's Trial-105 (``i3n303``; ELU+1 on K, min-max normalised V, ``(phi(K)^T
V)^T`` normalised, applied to L2-normalised Q, L2-normalised and gated elementwise by Q).

Choices documented here: the DWC has one 3x3 filter per channel of ``C`` (``dwc_shared_heads=True``
shares one ``d``-channel bank across heads). The genome runs through ``Genome.compile()``'s fast
executor (:mod:`attnzero.space.fast`: simplified genome, affine maps folded into contractions,
in-place intermediates); for half-precision inputs it keeps elementwise work in the input dtype and
accumulates norms, sums, batch statistics and token contractions in float32.
"""
from __future__ import annotations

from typing import Optional

import torch

from attnzero.space import TRIAL_105, GenomeLike, as_genome, mask_problem, run_masked

from .base import HW, AttentionKernel, TokenMask, VBranch, acc_dtype, add_branch, register_attention

__all__ = ['AttnZeroAttention']


@register_attention('attnzero')
class AttnZeroAttention(AttentionKernel):
    """A compiled AttnZero genome plus the depthwise-conv branch on V.

    Args:
        genome: canonical text, ``Genome`` or original-format dict (:func:`attnzero.space.as_genome`;
            another type raises ``TypeError``); default (``None``) Trial-105.
        kernel_size: DWC kernel size (3).
        dwc_shared_heads: share the DWC filters across heads.
        backend: ``'eager'`` (default) or ``'inductor'``: the compiled genome wrapped in
            ``torch.compile(dynamic=True)``, which fuses its elementwise passes (first call compiles:
            about 6 s on a 2-core CPU; needs a C++ compiler; see ``docs/benchmarks.md``).

    ``linear`` is set per instance from ``genome.complexity().kind``. With spatially reduced
    keys/values (``M != N``) the genome is compiled with ``distinct_kv=True`` (its einsum branches
    chosen for distinct token counts); a genome that is invalid in that setting raises then.
    """

    linear = True
    #: Token masks (DynamicViT pruning): a weighted mask runs the genome's token-masked form
    #: (:func:`attnzero.space.run_masked`: contractions, reductions and statistics over tokens --
    #: Trial-105's min-max of V over the whole tensor -- see only the kept tokens), whose result on
    #: the kept tokens equals the compiled program run on them alone (hard pruning). Set per
    #: instance: ``False`` for a genome with no masked form (``token_mask_problem`` says why).
    supports_token_mask = True

    def __init__(self, head_dim: int, num_heads: int, num_prefix_tokens: int = 0,
                 v_branch: bool = True, attn_drop: float = 0.0,
                 genome: Optional[GenomeLike] = None, kernel_size: int = 3,
                 dwc_shared_heads: bool = False, backend: str = 'eager') -> None:
        super().__init__(head_dim, num_heads, num_prefix_tokens, v_branch, attn_drop)
        self.genome = as_genome(genome, default=TRIAL_105)
        self.backend = backend
        self.fn = self.genome.compile(backend=backend)
        self._fn_kv = None  # compiled on first use with M != N (keys/values spatially reduced)
        self.linear = self.genome.complexity().kind == 'linear'
        #: why this genome cannot take token masks (``None``: it can)
        self.token_mask_problem = mask_problem(self.genome)
        self.supports_token_mask = self.token_mask_problem is None
        self.dwc = (VBranch(head_dim, num_heads, kernel_size, dwc_shared_heads, num_prefix_tokens)
                    if v_branch else None)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: Optional[HW] = None,
                attn_bias: Optional[torch.Tensor] = None, kv_hw: Optional[HW] = None,
                mask: Optional[TokenMask] = None) -> torch.Tensor:
        self._check_bias(attn_bias)
        if mask is not None:
            return self._forward_masked(q, k, v, hw, kv_hw, mask)
        fn = self.fn
        if k.shape[-2] != q.shape[-2]:
            if self._fn_kv is None:
                try:
                    self._fn_kv = self.genome.compile(distinct_kv=True, backend=self.backend)
                except Exception as e:
                    raise ValueError(f'genome {self.genome.to_string()!r} cannot take keys/values with '
                                     f'a different token count ({k.shape[-2]} vs {q.shape[-2]} queries, '
                                     f'e.g. sr_ratio > 1): {e}') from e
            fn = self._fn_kv
        # the compiled program is the fast executor: half inputs keep their dtype for elementwise
        # work, norms/sums/statistics and token contractions are accumulated in float32 inside it
        out = fn(q, k, v)
        if self.dwc is not None:
            out = add_branch(out, self.dwc(v, hw, q.shape[-2], kv_hw), q, k, v)
        return out

    def _forward_masked(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: Optional[HW],
                        kv_hw: Optional[HW], mask: TokenMask) -> torch.Tensor:
        if not self.supports_token_mask:
            raise ValueError(f'genome {self.genome.to_string()!r} cannot take token masks: '
                             f'{self.token_mask_problem}')
        if mask.weight is None:
            # hard pruning: the present tokens are the program's tokens
            out = self.fn(q, k, v)
        else:
            dt = acc_dtype(q.dtype)   # the masked form runs out-of-place, in float32 for half inputs
            out = run_masked(self.genome, q.to(dt), k.to(dt), v.to(dt), mask.weight).to(q.dtype)
        if self.dwc is not None:
            out = add_branch(out, self._spatial(self.dwc, v, hw, q.shape[-2], kv_hw, mask), q, k, v)
        return out

    def extra_repr(self) -> str:
        return super().extra_repr() + f', genome={self.genome.to_string()!r}'
