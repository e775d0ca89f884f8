"""``DynamicViTClassifier``: mmpretrain's ``TimmClassifier`` with DynamicViT's training losses.

Config (an ImageNet config of a DeiT model with ``token_reduction=dict(type='dynamicvit', ...)``)::

    model = dict(type='DynamicViTClassifier', model_name='attnzero_deit_tiny', attn='softmax',
                 token_reduction=dict(type='dynamicvit', keep=0.7),
                 ratio_weight=2.0, distill_weight=0.5)

Training loss: the classifier's own loss (``loss=...``, label smoothing / Mixup targets as in
``TimmClassifier``) on the pruned model's logits, plus :func:`attnzero.models.layers.dynamicvit_loss`:
the keep-ratio MSE and, with ``distill_weight > 0``, the distillation to the *unpruned teacher*:
a frozen copy of the model taken at the first training step -- after the weights were initialised
or loaded (``init_cfg`` / ``load_from``), i.e. the pretrained DeiT that DynamicViT fine-tunes --
run without pruning. The copy is no submodule: it is not in the checkpoints and not optimised.
Prediction and evaluation are ``TimmClassifier``'s (the model hard-prunes in eval mode).

Registered in mmengine's root ``MODELS`` as a builder function, so that importing
:mod:`attnzero.mm` does not import mmpretrain; the class is made on first use.
"""
from __future__ import annotations

import copy
import functools
from typing import Any, List

import torch
from mmengine.registry import MODELS

from attnzero.models.layers import dynamicvit_loss

__all__ = ['DynamicViTClassifier', 'dynamicvit_classifier_class']


@functools.lru_cache(maxsize=None)
def dynamicvit_classifier_class() -> type:
    """The classifier class (a subclass of mmpretrain's ``TimmClassifier``)."""
    from mmpretrain.models.classifiers import TimmClassifier

    class _DynamicViTClassifier(TimmClassifier):
        def __init__(self, *args, ratio_weight: float = 2.0, distill_weight: float = 0.5,
                     **kwargs) -> None:
            super().__init__(*args, **kwargs)
            if getattr(self.model, 'pruner', None) is None:
                raise ValueError("DynamicViTClassifier needs a model built with "
                                 "token_reduction=dict(type='dynamicvit', ...)")
            self.ratio_weight, self.distill_weight = float(ratio_weight), float(distill_weight)
            self._teacher: List[torch.nn.Module] = []  # a list: no submodule, no parameters

        def teacher(self) -> torch.nn.Module:
            """The frozen unpruned teacher (copied from the model on first use)."""
            if not self._teacher:
                t = copy.deepcopy(self.model).eval()
                t.requires_grad_(False)
                self._teacher.append(t)
            return self._teacher[0]

        def loss(self, inputs: torch.Tensor, data_samples: Any, **kwargs) -> dict:
            out = self.model.forward_train(inputs)
            losses = self._get_loss(out['logits'], data_samples, **kwargs)
            t_logits = t_tokens = None
            if self.distill_weight > 0:
                with torch.no_grad():
                    t = self.teacher().forward_train(inputs, prune=False)
                t_logits, t_tokens = t['logits'], t['tokens']
            losses.update(dynamicvit_loss(out['decisions'], self.model.pruner.keep_ratios, out['logits'],
                                          t_logits, out['tokens'], t_tokens, self.ratio_weight,
                                          self.distill_weight))
            return losses

    _DynamicViTClassifier.__name__ = _DynamicViTClassifier.__qualname__ = 'DynamicViTClassifier'
    return _DynamicViTClassifier


@MODELS.register_module(name='DynamicViTClassifier')
def DynamicViTClassifier(**kwargs) -> torch.nn.Module:  # noqa: N802 - a registry name
    """Build the DynamicViT classifier (see the module docstring)."""
    return dynamicvit_classifier_class()(**kwargs)
