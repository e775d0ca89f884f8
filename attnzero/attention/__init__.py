"""The attention interface and zoo: ``Attention`` on (B, N, C) tokens, kernels on (B, heads, N, d)."""
from .base import (ATTENTIONS, HW, Attention, AttentionKernel, TokenMask, VBranch, build_kernel,
                   masked_softmax, register_attention)
from . import zoo  # noqa: F401  (registers the built-in kernels)

__all__ = ['ATTENTIONS', 'HW', 'Attention', 'AttentionKernel', 'TokenMask', 'VBranch', 'build_kernel',
           'masked_softmax', 'register_attention']
