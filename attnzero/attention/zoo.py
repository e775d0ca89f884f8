"""Imports every built-in kernel so that it registers in :data:`attnzero.attention.base.ATTENTIONS`.

=============  ============================================  ==========
name           paper                                         cost
=============  ============================================  ==========
softmax        Vaswani et al. 2017                           O(N M d)
linear         Katharopoulos et al. 2020 (ELU+1)             O((N+M) d^2)
relu_linear    EfficientViT, Cai et al. 2023                 O((N+M) d^2)
focused        FLatten Transformer, Han et al. 2023          O((N+M) d^2)
hydra          Hydra Attention, Bolya et al. 2022            O((N+M) d)
agent          Agent Attention, Han et al. 2024              O((N+M) n d)
attnzero       AttnZero, Li et al. 2024 (compiled genome)    genome-dependent
identity       control: ``out = v``, no token mixing         O(N d)
lsh            Reformer, Kitaev et al. 2020 (LSH buckets)    O(N log N + N c d)
sepvit         SepViT, Li et al. 2022 (DSA + PSA)            O(N ws^2 d + N^2 d / ws^2)
=============  ============================================  ==========
"""
from . import agent, focused, genome, hydra, identity, linear, lsh, sepvit, softmax  # noqa: F401
from .base import ATTENTIONS

__all__ = ['ATTENTIONS']
