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
=============  ============================================  ==========
"""
from . import softmax  # noqa: F401
from .base import ATTENTIONS

for _mod in ('linear', 'focused', 'hydra', 'agent', 'genome'):
    try:
        __import__(f'{__package__}.{_mod}')
    except ModuleNotFoundError as e:  # a kernel file not written yet must not break the others
        if e.name != f'{__package__}.{_mod}':
            raise

__all__ = ['ATTENTIONS']
