"""Parameters and FLOPs of any ``nn.Module`` at any input size, attention matmuls included.

Built on :class:`torch.utils.flop_counter.FlopCounterMode` (torch's own dispatch-level counter), so
every matrix product is seen wherever it comes from: ``nn.Linear`` (addmm/mm), convolutions,
``@``/``matmul``/``bmm``/``baddbmm``, ``torch.einsum`` (it lowers to bmm) and
``scaled_dot_product_attention``. On CPU torch dispatches SDPA to
``aten._scaled_dot_product_flash_attention_for_cpu``, which torch's counter does not know; this
module registers it (``QK^T`` + ``AV``: ``2 * 2*B*h*N*M*d`` FLOPs), and its backward.

Units -- read this before quoting numbers:

* ``flops`` counts a multiply-add as **2** FLOPs (torch's convention).
* ``macs`` = ``flops / 2`` = multiply-accumulates. Vision papers (DeiT, PVT, Swin, CSwin,
  FLatten, AttnZero) quote "GFLOPs" that are really **GMACs**; compare those with ``macs``
  (:attr:`Cost.gmacs`).
* Only matrix products and convolutions are counted. Elementwise ops (activations, feature maps,
  normalisations, softmax, residual adds, pooling, interpolation, LayerNorm) are **not** counted --
  the same convention as fvcore and the numbers in the papers' tables.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torch.utils import flop_counter as _fc

__all__ = ['Cost', 'count_params', 'count_flops', 'model_cost', 'flop_counter']


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return _fc.sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args,
                             out_shape=None, **kwargs) -> int:
    return _fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def _custom_mapping() -> Dict[Any, Any]:
    aten = torch.ops.aten
    m: Dict[Any, Any] = {}
    if hasattr(aten, '_scaled_dot_product_flash_attention_for_cpu'):
        m[aten._scaled_dot_product_flash_attention_for_cpu] = _sdpa_cpu_flops
    if hasattr(aten, '_scaled_dot_product_flash_attention_for_cpu_backward'):
        m[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _sdpa_cpu_backward_flops
    return m


def flop_counter(depth: int = 2) -> _fc.FlopCounterMode:
    """A ``FlopCounterMode`` (no printing) that also counts CPU SDPA."""
    return _fc.FlopCounterMode(display=False, depth=depth, custom_mapping=_custom_mapping())


@dataclass
class Cost:
    """Result of :func:`count_flops`. ``flops`` = 2 x ``macs``; papers' "GFLOPs" = :attr:`gmacs`."""

    params: int
    flops: int
    by_op: Dict[str, int] = field(default_factory=dict)        # FLOPs per aten op
    by_module: Dict[str, int] = field(default_factory=dict)    # FLOPs per module (up to depth)

    @property
    def macs(self) -> int:
        return self.flops // 2

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    @property
    def mparams(self) -> float:
        return self.params / 1e6

    def __str__(self) -> str:
        return (f'params {self.mparams:.2f} M, {self.gmacs:.3f} GMACs (= "GFLOPs" in papers), '
                f'{self.gflops:.3f} GFLOPs (2 per multiply-add)')


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (unique) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _make_inputs(model: nn.Module, input_size: Union[int, Sequence[int]], batch_size: int) -> torch.Tensor:
    if isinstance(input_size, int):
        input_size = (3, input_size, input_size)
    input_size = tuple(input_size)
    if len(input_size) == 2:
        input_size = (3,) + input_size
    ref = next(iter(model.parameters()), None)
    kw = dict(device=ref.device, dtype=ref.dtype) if ref is not None else {}
    return torch.zeros((batch_size,) + input_size, **kw)


def count_flops(model: nn.Module, inputs: Union[None, torch.Tensor, Tuple[Any, ...]] = None,
                input_size: Union[int, Sequence[int]] = (3, 224, 224), batch_size: int = 1,
                depth: int = 2, **forward_kwargs) -> Cost:
    """Params and forward FLOPs of ``model`` at one input.

    Args:
        inputs: a tensor or a tuple of positional arguments; default a zero image
            ``(batch_size, *input_size)`` (``input_size`` may be ``H``, ``(H, W)`` or ``(C, H, W)``).
        depth: module-hierarchy depth of :attr:`Cost.by_module`.
        **forward_kwargs: passed to ``model(...)`` (e.g. ``hw=(H, W)`` for an ``Attention``).

    Runs one forward pass in eval mode under ``torch.no_grad`` (the training flag is restored).
    """
    if inputs is None:
        inputs = (_make_inputs(model, input_size, batch_size),)
    elif isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    was_training = model.training
    model.eval()
    counter = flop_counter(depth)
    try:
        with torch.no_grad(), counter:
            model(*inputs, **forward_kwargs)
    finally:
        model.train(was_training)
    counts = counter.get_flop_counts()
    by_op = {str(k): int(v) for k, v in counts.get('Global', {}).items()}
    by_module = {name: int(sum(c.values())) for name, c in counts.items()}
    return Cost(params=count_params(model), flops=int(counter.get_total_flops()), by_op=by_op,
                by_module=by_module)


def model_cost(model: nn.Module, input_size: Union[int, Sequence[int]] = (224, 224)) -> Tuple[float, float]:
    """``(M params, GMACs)`` -- the two numbers papers tabulate ("Params", "FLOPs")."""
    c = count_flops(model, input_size=input_size)
    return c.mparams, c.gmacs
