"""ViT-Slim-style slimming of the proxy DeiT, as a step after the search (issue 21).

ViT-Slim (Chavan et al., CVPR 2022) learns soft masks on a trained ViT's dimensions with an L1
budget, cuts the smallest and fine-tunes. Here, on a DeiT of :mod:`attnzero.models` (any attention):

1. **soft masks** (:class:`SlimMasks`): one learnable scalar per head of each block, scaling that
   head's attention output before the output projection, and one per MLP hidden unit of each
   block, scaling the hidden activation before ``fc2``; all start at 1. They are forward pre-hooks
   on ``attn.proj`` and ``mlp.fc2``, so the model classes are unchanged (and at 1 the output is);
2. **search**: the model's weights and the masks trained together on the proxy with the search's
   optimiser and schedule (:func:`attnzero.search.train.proxy_optimizer`, ``_lr_at``), loss
   ``CE + lam * (mean |head mask| + mean |unit mask|)`` (each mean is over the whole model, so a
   head is pulled down by about as much more than a unit as it costs more FLOPs in the default
   proxy: 8 heads, 384 units), starting from a model trained by the proxy training (slimming comes
   after the search). The masks' learning rate is set so that the schedule's rates sum to
   ``mask_travel`` (AdamW moves a parameter by about its learning rate per step: at the weights'
   rate, one epoch could move a mask by ~0.2 at most, too little to tell the units apart);
3. **cut** (:func:`plan_cut`): heads and hidden units ranked by ``|mask|`` over the whole model,
   the lowest removed first until the model's FLOPs (:func:`attnzero.flops.count_flops`, measured)
   are at most ``target`` of the original; each removal is accounted with the FLOPs it saves (a
   head: its share of its block's q/k/v, kernel (with its depthwise conv on V) and output
   projection, a unit: its share of ``fc1`` + ``fc2``, both read from the counter's per-module
   FLOPs). At least one head and one hidden unit stay in every block;
4. **static model** (:func:`static_model`): a plain ``attnzero_vit`` (``timm.create_model``) of the
   cut shape (per-block heads, and hidden sizes written as MLP ratios,
   :meth:`attnzero.space.shape.ViTShape.with_hidden`) holding the kept weights, with the mask values
   folded into ``proj`` and ``fc2``. It has no mask parameters; it equals the masked model with the
   pruned units' masks at zero when the attention's heads are independent
   (:func:`heads_separable`: softmax, the linear attentions, genomes without whole-tensor
   statistics). Trial-105's ``min_max_normalize`` and ``normalize`` take statistics over the whole
   tensor, heads included, so there the kept heads' outputs change when the others are cut (the
   report says which case it is, and the cut model's accuracy is measured on the static model);
5. **fine-tune** the static model; validation and test accuracies before, after the mask search,
   after the cut and after fine-tuning, and of a control: the unslimmed model trained for as many
   more epochs (the slimmed one has had ``slim_epochs + finetune_epochs`` more training).

:func:`run_slim` does it all (``tools/slim.py``); intermediate models are cached in the output
folder, so a second run with another ``target`` reuses the trained and searched ones.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import timm
import torch
import torch.nn.functional as F
from torch import nn

from attnzero.attention import ATTENTIONS
from attnzero.attention.base import VBranch
from attnzero.flops import count_flops, count_params
from attnzero.space import TRIAL_105, as_genome
from attnzero.space.shape import ShapeError, ViTShape, vit_macs

from .archs import PROXY_ARCHS
from .config import SEARCH_ONLY_FIELDS, SearchConfig
from .proxies import ProxyData, load_proxy
from .state import atomic_write_json
from .train import _accuracy, _lr_at, _predict, deterministic_torch, init_proxy_model, proxy_optimizer, \
    steps_per_epoch

__all__ = ['SlimError', 'SlimMasks', 'heads_separable', 'unit_flops', 'plan_cut', 'static_model',
           'proxy_timm_kwargs', 'train_epochs', 'run_slim', 'write_report', 'report_paths',
           'DEFAULT_LAM', 'DEFAULT_MASK_TRAVEL', 'SLIM_DOC']

#: the default weight of the mask L1 term (each part the mean |mask|, so both are in [0, 1] at the start)
DEFAULT_LAM = 0.5
#: how far a mask can move during the search (the sum of its learning rates over the steps; AdamW moves
#: a parameter by about its learning rate per step). At the weights' rate the masks could move by at
#: most ~0.2 in one epoch of the default proxy, and the masks would stay nearly equal.
DEFAULT_MASK_TRAVEL = 0.5


class SlimError(ValueError):
    """Bad slimming settings (names the value)."""


# ---------------------------------------------------------------------------------- masks
def _blocks(model: nn.Module) -> Sequence[nn.Module]:
    blocks = getattr(model, 'blocks', None)
    if blocks is None or not all(hasattr(b, 'attn') and hasattr(b.attn, 'proj') and hasattr(b, 'mlp')
                                 and hasattr(b.mlp, 'fc1') and hasattr(b.mlp, 'fc2') for b in blocks):
        raise SlimError(f'{type(model).__name__}: slimming needs a DeiT-style model (blocks with '
                        'attn.proj, mlp.fc1 and mlp.fc2)')
    return blocks


class SlimMasks(nn.Module):
    """Soft masks on a DeiT's heads and MLP hidden units, all at 1 (ViT-Slim's search masks).

    ``heads[i]`` (``num_heads`` of block ``i``) scales each head's output (the ``head_dim``
    channels of that head, before ``attn.proj``); ``units[i]`` (hidden units of block ``i``)
    scales the hidden activation before ``mlp.fc2``. Attached as forward pre-hooks (no change to
    the model class, no host reads); :meth:`remove` detaches them. The masks are this module's
    parameters, not the model's.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        blocks = _blocks(model)
        self.heads = nn.ParameterList([nn.Parameter(torch.ones(b.attn.num_heads)) for b in blocks])
        self.units = nn.ParameterList([nn.Parameter(torch.ones(b.mlp.fc1.out_features)) for b in blocks])
        self._handles = []
        for i, b in enumerate(blocks):
            self._handles.append(b.attn.proj.register_forward_pre_hook(self._hook(self.heads, i, b.attn.head_dim)))
            self._handles.append(b.mlp.fc2.register_forward_pre_hook(self._hook(self.units, i, 1)))

    @staticmethod
    def _hook(masks: nn.ParameterList, i: int, width: int) -> Callable:
        def scale(module: nn.Module, args: Tuple[Any, ...]) -> Tuple[Any, ...]:
            m = masks[i]
            if width > 1:
                m = m.repeat_interleave(width)
            return (args[0] * m.to(args[0].dtype),) + tuple(args[1:])
        return scale

    def remove(self) -> None:
        """Detach the hooks (the model runs unmasked again)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def l1(self) -> torch.Tensor:
        """Mean |head mask| + mean |unit mask| over the whole model (each 1 at the start)."""
        return torch.cat(list(self.heads)).abs().mean() + torch.cat(list(self.units)).abs().mean()

    @contextlib.contextmanager
    def zeroed(self, keep_heads: Sequence[Sequence[int]], keep_units: Sequence[Sequence[int]]):
        """Within the block, the masks of the units not kept are 0 (the masked model "with the
        pruned units at zero"); restored afterwards."""
        saved = [p.detach().clone() for p in self.parameters()]
        try:
            with torch.no_grad():
                for masks, keeps in ((self.heads, keep_heads), (self.units, keep_units)):
                    for m, keep in zip(masks, keeps):
                        drop = torch.ones(m.numel(), dtype=torch.bool)
                        drop[list(keep)] = False
                        m[drop] = 0.0
            yield self
        finally:
            with torch.no_grad():
                for p, s in zip(self.parameters(), saved):
                    p.copy_(s)


def heads_separable(model: nn.Module, seed: int = 0) -> bool:
    """Whether every block's attention kernel computes each head from that head's q/k/v alone
    (checked numerically: the other heads' outputs must not move when head 0's inputs are
    redrawn). True for softmax and the linear attentions; False for genomes with whole-tensor
    statistics (Trial-105). Only then does cutting a head leave the others unchanged."""
    gen = torch.Generator().manual_seed(seed)
    hw = tuple(model.grid)
    p = getattr(model, 'num_prefix_tokens', 1)
    with torch.no_grad():
        for b in _blocks(model):
            kern, h, d = b.attn.kernel, b.attn.num_heads, b.attn.head_dim
            if h < 2:
                continue
            was = kern.training
            kern.eval()
            try:
                qkv = [torch.randn(2, h, p + hw[0] * hw[1], d, generator=gen) for _ in range(3)]
                out = kern(*qkv, hw)
                redrawn = [t.clone() for t in qkv]
                for t in redrawn:
                    t[:, 0] = torch.randn(t[:, 0].shape, generator=gen) * 3.0 + 1.0
                out2 = kern(*redrawn, hw)
            finally:
                kern.train(was)
            if not torch.allclose(out[:, 1:], out2[:, 1:], atol=1e-6, rtol=1e-5):
                return False
    return True


# ---------------------------------------------------------------------------------- cost and cut
def unit_flops(model: nn.Module, img_size: int) -> Tuple[int, List[float], List[float]]:
    """``(total, per_head, per_unit)``: the model's forward FLOPs per image
    (:func:`attnzero.flops.count_flops`) and, per block, what one head (its block's attention
    FLOPs over its heads: q/k/v, kernel with its V conv, projection) and one hidden unit (its
    block's MLP FLOPs over its units) cost."""
    cost = count_flops(model, torch.zeros(1, 3, img_size, img_size), depth=3)
    root = type(model).__name__
    per_head, per_unit = [], []
    for i, b in enumerate(_blocks(model)):
        attn = cost.by_module.get(f'{root}.blocks.{i}.attn')
        mlp = cost.by_module.get(f'{root}.blocks.{i}.mlp')
        if attn is None or mlp is None:
            raise SlimError(f'the FLOP counter reports no blocks.{i}.attn / blocks.{i}.mlp of {root}')
        per_head.append(attn / b.attn.num_heads)
        per_unit.append(mlp / b.mlp.fc1.out_features)
    return cost.flops, per_head, per_unit


def _ranking(masks: SlimMasks, per_head: Sequence[float], per_unit: Sequence[float]) -> List[Tuple]:
    """Every head and hidden unit as ``(|mask|, kind, block, index, flops)``, smallest mask first
    (ties: heads before units, then block and index)."""
    items = []
    for kind, ms, cost in (('head', masks.heads, per_head), ('unit', masks.units, per_unit)):
        for i, m in enumerate(ms):
            for j, v in enumerate(m.detach().abs().tolist()):
                items.append((v, kind, i, j, cost[i]))
    return sorted(items, key=lambda t: (t[0], t[1] != 'head', t[2], t[3]))


def plan_cut(masks: SlimMasks, per_head: Sequence[float], per_unit: Sequence[float], total: float,
             target: float, measure: Callable[[List[List[int]], List[List[int]]], float]
             ) -> Tuple[List[List[int]], List[List[int]], float]:
    """Remove heads and units by ``|mask|`` (smallest first; at least one head and one unit per
    block) until ``measure(keep_heads, keep_units)`` -- the FLOPs of the model with only those --
    is at most ``target * total``. Removals are accounted with ``per_head`` / ``per_unit`` FLOPs
    and the result checked with ``measure`` (more are removed while it is still above).
    Returns ``(keep_heads, keep_units, flops)``, kept indices sorted per block."""
    budget = target * total
    keep_h = [set(range(m.numel())) for m in masks.heads]
    keep_u = [set(range(m.numel())) for m in masks.units]
    items = _ranking(masks, per_head, per_unit)
    pos, predicted = 0, float(total)

    def lists():
        return [sorted(k) for k in keep_h], [sorted(k) for k in keep_u]

    while True:
        while predicted > budget and pos < len(items):
            _, kind, i, j, cost = items[pos]
            pos += 1
            keep = keep_h[i] if kind == 'head' else keep_u[i]
            if len(keep) > 1:
                keep.discard(j)
                predicted -= cost
        measured = measure(*lists())
        if measured <= budget:
            break
        if pos >= len(items):
            raise SlimError(f'target {target!r}: the smallest model (one head and one hidden unit per '
                            f'block) has {measured / total:.3f} of the FLOPs')
        predicted = measured  # the accounting was short of the measured FLOPs: go on from those
    return (*lists(), measured)


# ---------------------------------------------------------------------------------- static model
def _cut_state(model: nn.Module, masks: SlimMasks, keep_heads: Sequence[Sequence[int]],
               keep_units: Sequence[Sequence[int]], target_state: Dict[str, torch.Tensor]
               ) -> Dict[str, torch.Tensor]:
    """The state dict of the static model: kept rows/columns of every block's q/k/v, projection,
    kernel V conv, ``fc1`` and ``fc2``, with the mask values folded into ``proj`` and ``fc2``."""
    src = model.state_dict()
    out: Dict[str, torch.Tensor] = {}
    blocks = _blocks(model)
    special: Dict[str, torch.Tensor] = {}
    for i, b in enumerate(blocks):
        h, d = b.attn.num_heads, b.attn.head_dim
        kh = torch.tensor(list(keep_heads[i]), dtype=torch.long)
        ku = torch.tensor(list(keep_units[i]), dtype=torch.long)
        mh = masks.heads[i].detach()[kh]
        mu = masks.units[i].detach()[ku]
        pre = f'blocks.{i}.'
        if not getattr(b.attn, 'qkv_fused', True) or getattr(b.attn, 'sr_ratio', 1) != 1:
            raise SlimError(f'block {i}: slimming needs the fused q/k/v projection (no spatial reduction)')
        w, bias = src[pre + 'attn.qkv.weight'], src.get(pre + 'attn.qkv.bias')
        special[pre + 'attn.qkv.weight'] = w.reshape(3, h, d, -1)[:, kh].reshape(-1, w.shape[-1])
        if bias is not None:
            special[pre + 'attn.qkv.bias'] = bias.reshape(3, h, d)[:, kh].reshape(-1)
        pw = src[pre + 'attn.proj.weight']
        special[pre + 'attn.proj.weight'] = (pw.reshape(pw.shape[0], h, d)[:, kh] * mh[None, :, None]
                                             ).reshape(pw.shape[0], -1)
        kernel = b.attn.kernel
        for name, t in list(kernel.state_dict().items()):
            key = pre + 'attn.kernel.' + name
            dwc = getattr(kernel, 'dwc', None)
            if isinstance(dwc, VBranch) and name.startswith('dwc.') and not dwc.shared_across_heads:
                special[key] = t.reshape(h, d, *t.shape[1:])[kh].reshape(-1, *t.shape[1:])
            elif len(kh) != h and target_state[key].shape != t.shape:
                raise SlimError(f'block {i}: cannot cut heads of attention {b.attn.attn!r}: its kernel '
                                f'parameter {name!r} {tuple(t.shape)} is not a per-channel V conv')
        special[pre + 'mlp.fc1.weight'] = src[pre + 'mlp.fc1.weight'][ku]
        special[pre + 'mlp.fc1.bias'] = src[pre + 'mlp.fc1.bias'][ku]
        special[pre + 'mlp.fc2.weight'] = src[pre + 'mlp.fc2.weight'][:, ku] * mu[None, :]
    for key, t in target_state.items():
        if key not in src:
            raise SlimError(f'static model parameter {key!r} has no counterpart in the slimmed model')
        v = special.get(key, src[key])
        if v.shape != t.shape:
            raise SlimError(f'static model parameter {key!r}: {tuple(v.shape)} from the slimmed model, '
                            f'{tuple(t.shape)} expected')
        out[key] = v.clone()
    return out


def static_model(model: nn.Module, masks: SlimMasks, keep_heads: Sequence[Sequence[int]],
                 keep_units: Sequence[Sequence[int]], build: Callable[[str], nn.Module]) -> nn.Module:
    """The plain model of the cut shape (``build(shape_text)``, e.g. ``timm.create_model(
    'attnzero_vit', arch=shape_text, ...)``) with the kept weights of ``model`` and the masks
    folded in; no mask parameters."""
    src_shape = model.vit_shape
    if src_shape is None:
        raise SlimError('the model has no ViT shape (per-block heads without a head_dim)')
    shape = ViTShape.with_hidden(src_shape.embed_dim, [len(k) for k in keep_heads],
                                 [len(k) for k in keep_units], src_shape.head_dim)
    static = build(shape.to_string())
    static.load_state_dict(_cut_state(model, masks, keep_heads, keep_units, static.state_dict()))
    static.train(model.training)
    return static


def proxy_timm_kwargs(cfg: SearchConfig, data: ProxyData, attn: str, genome: Optional[str]) -> Dict[str, Any]:
    """``timm.create_model('attnzero_vit', arch=<shape text>, **kwargs)`` kwargs that build the
    config's DeiT proxy (patch size, pooling, image size, classes, attention) at any shape."""
    kw = dict(PROXY_ARCHS['deit'])
    kw['patch_size'] = int(data.patch_size)
    kw.update(cfg.arch_overrides.get('deit') or {})
    for k in ('embed_dim', 'depth', 'num_heads', 'mlp_ratio', 'head_dim', 'shape'):
        kw.pop(k, None)
    kw.update(img_size=data.img_size, num_classes=data.num_classes, attn=attn)
    if attn == 'attnzero':
        kw['genome'] = genome
    return kw


# ---------------------------------------------------------------------------------- training
def train_epochs(model: nn.Module, data: ProxyData, cfg: SearchConfig, epochs: int, seed: int,
                 masks: Optional[SlimMasks] = None, lam: float = 0.0,
                 mask_travel: float = 0.5) -> Dict[str, Any]:
    """``epochs`` of the search's proxy training (AdamW of :func:`proxy_optimizer`, warm-up +
    cosine ``_lr_at``, ``cfg.batch_size``, ``cfg.grad_clip``; data order from ``seed``); with
    ``masks``, they train too under ``CE + lam * masks.l1()``, without weight decay, on the same
    schedule at the base learning rate whose steps sum to ``mask_travel`` (AdamW moves a parameter
    by about its learning rate per step, so this is how far a mask can move in the whole search,
    whatever the number of steps). Returns ``mask_lr`` (that base rate), steps,
    seconds and the mean loss of the first and last tenth of the steps."""
    t0 = time.perf_counter()
    n = len(data.train_x)
    total = epochs * steps_per_epoch(n, cfg.batch_size)
    opt = proxy_optimizer(model, cfg)
    params = list(model.parameters())
    if masks is not None:
        mask_lr = mask_travel / sum(_lr_at(t, total, 1.0, cfg.warmup_frac) for t in range(total))
        opt.add_param_group(dict(params=list(masks.parameters()), weight_decay=0.0, lr=mask_lr,
                                 base_lr=mask_lr))
        params += list(masks.parameters())
    gen = torch.Generator().manual_seed(seed)
    losses: List[float] = []
    step = 0
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            for group in opt.param_groups:
                group['lr'] = _lr_at(step, total, group.get('base_lr', cfg.lr), cfg.warmup_frac)
            loss = F.cross_entropy(model(data.train_x[idx]), data.train_y[idx])
            if masks is not None and lam > 0:
                loss = loss + lam * masks.l1()
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise SlimError(f'non-finite training loss {lv} at step {step + 1}')
            losses.append(lv)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            step += 1
    w = max(1, len(losses) // 10)
    return dict(mask_lr=mask_lr if masks is not None else None, steps=step, seconds=time.perf_counter() - t0,
                loss_first=sum(losses[:w]) / w if losses else None,
                loss_last=sum(losses[-w:]) / w if losses else None)


def _scores(model: nn.Module, data: ProxyData) -> Dict[str, float]:
    """Validation and test accuracy (test labels are read for this report only; nothing is
    selected on them)."""
    return dict(val=_accuracy(model, data.val_x, data.val_y),
                test=data.test_accuracy(_predict(model, data.test_x)))


# ---------------------------------------------------------------------------------- the pipeline
def _check_args(attn: str, target: float, lam: float, slim_epochs: int, finetune_epochs: int,
                mask_travel: float = 0.5) -> None:
    if attn not in ATTENTIONS:
        raise SlimError(f'unknown attention {attn!r}; known: {", ".join(sorted(ATTENTIONS))}')
    if not (isinstance(target, (int, float)) and 0.0 < target <= 1.0):
        raise SlimError(f'target {target!r}: must be in (0, 1] (the fraction of the FLOPs to keep)')
    if not (isinstance(lam, (int, float)) and lam >= 0 and math.isfinite(lam)):
        raise SlimError(f'lam {lam!r}: must be a finite number >= 0')
    if not (isinstance(mask_travel, (int, float)) and mask_travel > 0 and math.isfinite(mask_travel)):
        raise SlimError(f'mask_travel {mask_travel!r}: must be a finite number > 0')
    if not (isinstance(slim_epochs, int) and slim_epochs >= 1):
        raise SlimError(f'slim_epochs {slim_epochs!r}: must be an integer >= 1')
    if not (isinstance(finetune_epochs, int) and finetune_epochs >= 0):
        raise SlimError(f'finetune_epochs {finetune_epochs!r}: must be an integer >= 0')


def _key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode('utf-8')).hexdigest()[:12]


def run_slim(cfg: SearchConfig, out_dir: str, *, attn: str = 'attnzero', genome: Any = None,
             shape: Optional[str] = None, target: float = 0.7, lam: float = DEFAULT_LAM,
             mask_travel: float = DEFAULT_MASK_TRAVEL, slim_epochs: int = 1, finetune_epochs: int = 1,
             seed: Optional[int] = None,
             weights: Optional[str] = None, control: bool = True, command: str = '',
             log: Callable[[str], None] = lambda m: None) -> Dict[str, Any]:
    """Slim the DeiT proxy of ``cfg`` with ``attn`` (``genome`` for ``'attnzero'``; default
    Trial-105) at ``shape`` (default: the config's proxy shape): train it (``cfg.epochs``; or load
    ``weights``, a state dict), search masks for ``slim_epochs`` with weight ``lam``, cut to
    ``target`` of the FLOPs, fine-tune ``finetune_epochs``. With ``control``, the unslimmed
    trained model is also trained for ``slim_epochs + finetune_epochs`` more epochs (the same
    extra training, without the cut) for comparison. Writes the report, the static model's
    ``static_model.pth`` and ``static_model.json`` (how to rebuild it) to ``out_dir``; returns the
    summary."""
    _check_args(attn, target, lam, slim_epochs, finetune_epochs, mask_travel)
    if attn == 'attnzero':
        try:
            genome = as_genome(genome, default=TRIAL_105).to_string()
        except Exception as e:  # noqa: BLE001 - name the bad genome
            raise SlimError(f'genome {genome!r}: {e}') from None
    else:
        genome = None
    if shape is not None:
        try:
            shape = ViTShape.parse(shape).to_string()
        except ShapeError as e:
            raise SlimError(f'shape {shape!r}: {e}') from None
    if weights is not None and not os.path.isfile(weights):
        raise SlimError(f'weights {weights!r}: no such file')
    seed = cfg.seed if seed is None else int(seed)
    data = load_proxy(cfg.proxy)
    os.makedirs(out_dir, exist_ok=True)
    cache = os.path.join(out_dir, 'cache')
    os.makedirs(cache, exist_ok=True)
    trained = {k: v for k, v in cfg.to_dict().items() if k not in SEARCH_ONLY_FIELDS}
    train_key = _key(dict(cfg=trained, attn=attn, genome=genome, shape=shape, seed=seed,
                          weights=None if weights is None else os.path.abspath(weights)))
    search_key = _key(dict(train=train_key, lam=lam, slim_epochs=slim_epochs, mask_travel=mask_travel))
    t_start = time.perf_counter()
    load_start = os.getloadavg() if hasattr(os, 'getloadavg') else None
    summary: Dict[str, Any] = dict(proxy=cfg.proxy, attn=attn, genome=genome, target=target, lam=lam,
                                   mask_travel=mask_travel, epochs=cfg.epochs, slim_epochs=slim_epochs,
                                   finetune_epochs=finetune_epochs,
                                   seed=seed, weights=weights, command=command, threads=cfg.threads)
    with deterministic_torch(cfg.threads):
        model = init_proxy_model('deit', attn, genome, data, cfg, seed, shape)
        summary['shape_before'] = model.vit_shape.to_string()
        path = os.path.join(cache, f'trained-{train_key}.pth')
        if weights is not None:
            try:
                model.load_state_dict(torch.load(weights, map_location='cpu'))
            except Exception as e:  # noqa: BLE001 - name the file
                raise SlimError(f'weights {weights!r}: not a state dict of this model '
                                f'({type(e).__name__}: {str(e).splitlines()[0][:200]})') from None
            summary['pretrain'] = dict(source=weights)
            torch.save(model.state_dict(), path)
        elif os.path.exists(path):
            model.load_state_dict(torch.load(path, map_location='cpu'))
            summary['pretrain'] = dict(source='cache', file=os.path.relpath(path, out_dir))
            log(f'trained model from {path}')
        else:
            log(f'training the proxy model ({cfg.epochs} epochs)')
            summary['pretrain'] = train_epochs(model, data, cfg, cfg.epochs, seed)
            torch.save(model.state_dict(), path)
        flops0, per_head, per_unit = unit_flops(model, data.img_size)
        params0 = count_params(model)
        summary['before'] = dict(flops=flops0, params=params0, **_scores(model, data))
        log(f'before: {summary["before"]}')

        masks = SlimMasks(model)
        path = os.path.join(cache, f'searched-{search_key}.pth')
        if os.path.exists(path):
            state = torch.load(path, map_location='cpu')
            model.load_state_dict(state['model'])
            masks.load_state_dict(state['masks'])
            summary['search'] = dict(source='cache', file=os.path.relpath(path, out_dir))
            log(f'searched masks from {path}')
        else:
            log(f'searching masks ({slim_epochs} epochs, lam {lam})')
            summary['search'] = train_epochs(model, data, cfg, slim_epochs, seed + 1, masks, lam, mask_travel)
            torch.save(dict(model=model.state_dict(), masks=masks.state_dict()), path)
        summary['masked'] = dict(**_scores(model, data))
        kwargs = proxy_timm_kwargs(cfg, data, attn, genome)

        def build(text: str) -> nn.Module:
            return timm.create_model('attnzero_vit', arch=text, **kwargs)

        def measure(kh, ku) -> float:
            return float(count_flops(static_model(model, masks, kh, ku, build),
                                     torch.zeros(1, 3, data.img_size, data.img_size)).flops)

        model.eval()
        keep_h, keep_u, _ = plan_cut(masks, per_head, per_unit, flops0, target, measure)
        static = static_model(model, masks, keep_h, keep_u, build).eval()
        separable = heads_separable(model)
        with torch.no_grad(), masks.zeroed(keep_h, keep_u):
            x = data.val_x[:256]
            diff = float((static(x) - model(x)).abs().max())
        cost = count_flops(static, torch.zeros(1, 3, data.img_size, data.img_size))
        summary['shape_after'] = static.vit_shape.to_string()
        summary['heads_separable'] = separable
        summary['static_vs_masked_max_abs_diff'] = diff
        summary['cut'] = dict(flops=cost.flops, params=cost.params, **_scores(static, data))
        summary['flops_fraction'] = cost.flops / flops0
        # the joint search's analytic cost at full size (224 px, patch 16, 1000 classes), for reference
        full = [vit_macs(ViTShape.parse(summary[k]), genome) for k in ('shape_before', 'shape_after')]
        summary['full_size_gmacs'] = dict(before=full[0] / 1e9, after=full[1] / 1e9, fraction=full[1] / full[0])
        summary['blocks'] = [dict(block=i, heads_before=masks.heads[i].numel(), heads_after=len(keep_h[i]),
                                  hidden_before=masks.units[i].numel(), hidden_after=len(keep_u[i]),
                                  head_masks=[round(v, 4) for v in masks.heads[i].detach().tolist()],
                                  kept_heads=keep_h[i],
                                  unit_mask_abs=_quantiles(masks.units[i].detach().abs()),
                                  flops_per_head=per_head[i], flops_per_unit=per_unit[i])
                             for i in range(len(keep_h))]
        summary['unit_masks'] = [[round(v, 4) for v in m.detach().tolist()] for m in masks.units]
        summary['kept_units'] = keep_u
        log(f'cut to {summary["shape_after"]}: {summary["cut"]}')
        masks.remove()
        if finetune_epochs:
            log(f'fine-tuning ({finetune_epochs} epochs)')
            summary['finetune'] = train_epochs(static, data, cfg, finetune_epochs, seed + 2)
        static.eval()
        summary['after'] = dict(flops=cost.flops, params=count_params(static), **_scores(static, data))
        if control:
            summary['control'] = _control(cfg, data, attn, genome, shape, seed, cache, train_key,
                                          slim_epochs + finetune_epochs, log)
    summary['timm'] = dict(model='attnzero_vit', arch=summary['shape_after'], kwargs=kwargs)
    summary['seconds'] = time.perf_counter() - t_start
    summary['load_start'] = None if load_start is None else [round(v, 2) for v in load_start]
    summary['load_end'] = [round(v, 2) for v in os.getloadavg()] if hasattr(os, 'getloadavg') else None
    torch.save(static.state_dict(), os.path.join(out_dir, 'static_model.pth'))
    atomic_write_json(os.path.join(out_dir, 'static_model.json'), dict(
        summary['timm'], state_dict='static_model.pth',
        python=(f"timm.create_model('attnzero_vit', arch={summary['shape_after']!r}, "
                + ', '.join(f'{k}={v!r}' for k, v in kwargs.items()) + ')')))
    write_report(summary, out_dir)
    return summary


def _control(cfg: SearchConfig, data: ProxyData, attn: str, genome: Optional[str], shape: Optional[str],
             seed: int, cache: str, train_key: str, epochs: int, log: Callable[[str], None]) -> Dict[str, Any]:
    """The trained, unslimmed model after ``epochs`` more epochs of training (cached)."""
    model = init_proxy_model('deit', attn, genome, data, cfg, seed, shape)
    model.load_state_dict(torch.load(os.path.join(cache, f'trained-{train_key}.pth'), map_location='cpu'))
    path = os.path.join(cache, f'control-{train_key}-{epochs}.pth')
    if os.path.exists(path):
        model.load_state_dict(torch.load(path, map_location='cpu'))
        run: Dict[str, Any] = dict(source='cache')
    else:
        log(f'control: the unslimmed model trained {epochs} more epochs')
        run = train_epochs(model, data, cfg, epochs, seed + 3)
        torch.save(model.state_dict(), path)
    model.eval()
    return dict(epochs=epochs, flops=float(count_flops(model, torch.zeros(1, 3, data.img_size, data.img_size)).flops),
                params=count_params(model), **_scores(model, data), train=run)


def _quantiles(t: torch.Tensor) -> Dict[str, float]:
    q = torch.quantile(t.float(), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])).tolist()
    return dict(zip(('min', 'q25', 'median', 'q75', 'max'), (round(v, 4) for v in q)))


# ---------------------------------------------------------------------------------- report
def report_paths(out_dir: str) -> Dict[str, str]:
    """The report files of a slimming run in ``out_dir``: ``md``, ``csv``, ``png``, ``json``."""
    return {k: os.path.join(out_dir, f) for k, f in
            (('md', 'slim.md'), ('csv', 'slim.csv'), ('png', 'slim.png'), ('json', 'summary.json'))}


def write_report(summary: Dict[str, Any], out_dir: str) -> Dict[str, str]:
    """``slim.md``, ``slim.csv`` (one row per block), ``slim.png`` (mask values per block, accuracy
    against FLOPs) and ``summary.json`` in ``out_dir``; returns their paths."""
    paths = report_paths(out_dir)
    atomic_write_json(paths['json'], summary)
    with open(paths['csv'], 'w', newline='', encoding='utf-8') as f:
        w = csv.writer(f)
        w.writerow(['block', 'heads_before', 'heads_after', 'hidden_before', 'hidden_after', 'head_masks',
                    'kept_heads', 'unit_mask_abs_median', 'flops_per_head', 'flops_per_unit'])
        for b in summary['blocks']:
            w.writerow([b['block'], b['heads_before'], b['heads_after'], b['hidden_before'], b['hidden_after'],
                        ' '.join(f'{v:.4f}' for v in b['head_masks']), ' '.join(map(str, b['kept_heads'])),
                        f'{b["unit_mask_abs"]["median"]:.4f}', f'{b["flops_per_head"]:.0f}',
                        f'{b["flops_per_unit"]:.0f}'])
    s = summary
    b0, cut, after = s['before'], s['cut'], s['after']
    ft = s.get('finetune')
    L = ['# ViT-Slim-style slimming of the proxy DeiT', '']
    if s.get('command'):
        L += ['Produced by:', '', '```bash', s['command'], '```', '']
    attn = s['attn'] + (f' (genome `{s["genome"]}`)' if s.get('genome') else '')
    pre = s['pretrain']
    pre_txt = (f'weights from {pre["source"]}' if pre.get('source') not in (None, 'cache')
               else f'trained for {s["epochs"]} epochs by the proxy training'
               + (f' (cached: {pre["file"]})' if pre.get('source') == 'cache' else ''))
    L += [f'Proxy `{s["proxy"]}`, attention {attn}, shape `{s["shape_before"]}` {pre_txt}; masks searched '
          f'for {s["slim_epochs"]} epoch(s) with lam {s["lam"]} and mask travel {s["mask_travel"]:g} '
          f'(mask learning rate {_mask_lr(s)}; loss CE + lam x (mean |head mask| + mean |unit mask|)); '
          f'cut to at most {s["target"]:g} of the FLOPs; the static model fine-tuned for '
          f'{s["finetune_epochs"]} epoch(s). Seed {s["seed"]}, {s["threads"]} torch thread(s), '
          f'{s["seconds"]:.0f} s in all; load average (1/5/15 min) {_load(s.get("load_start"))} at the '
          f'start, {_load(s.get("load_end"))} at the end.', '',
          '| model | shape | MFLOPs / image | params | val acc | test acc |', '|---|---|---|---|---|---|',
          f'| before slimming | `{s["shape_before"]}` | {b0["flops"] / 1e6:.3f} | {b0["params"]:,} | '
          f'{b0["val"]:.4f} | {b0["test"]:.4f} |',
          f'| masked (after the mask search) | `{s["shape_before"]}` | {b0["flops"] / 1e6:.3f} | {b0["params"]:,} | '
          f'{s["masked"]["val"]:.4f} | {s["masked"]["test"]:.4f} |',
          f'| cut, static, no fine-tuning | `{s["shape_after"]}` | {cut["flops"] / 1e6:.3f} | {cut["params"]:,} | '
          f'{cut["val"]:.4f} | {cut["test"]:.4f} |',
          f'| cut + fine-tuned ({s["finetune_epochs"]} epoch(s)) | `{s["shape_after"]}` | '
          f'{after["flops"] / 1e6:.3f} | {after["params"]:,} | {after["val"]:.4f} | {after["test"]:.4f} |']
    ctl = s.get('control')
    if ctl:
        L.append(f'| control: not slimmed, trained {ctl["epochs"]} more epoch(s) | `{s["shape_before"]}` | '
                 f'{ctl["flops"] / 1e6:.3f} | {ctl["params"]:,} | {ctl["val"]:.4f} | {ctl["test"]:.4f} |')
    L += ['',
          f'FLOPs cut: **{100 * (1 - s["flops_fraction"]):.1f} %** (kept {s["flops_fraction"]:.3f} of the '
          f'original; target {s["target"]:g}); parameters {100 * (1 - after["params"] / b0["params"]):.1f} % '
          f'fewer. Accuracy change after fine-tuning: validation {100 * (after["val"] - b0["val"]):+.2f} '
          f'points, test {100 * (after["test"] - b0["test"]):+.2f} points (one seed; the slimmed model has '
          f'had {s["slim_epochs"] + s["finetune_epochs"]} more epochs of training than the model before)'
          + (f'; against the control trained as long without the cut: validation '
             f'{100 * (after["val"] - ctl["val"]):+.2f}, test {100 * (after["test"] - ctl["test"]):+.2f} points'
             if ctl else '') + '. FLOPs count a multiply-add as 2 (`attnzero.flops.count_flops`, one image). '
          + (f'The same shapes at full size (224 px, patch 16, 1000 classes; the joint search\'s analytic '
             f'`vit_macs`): {s["full_size_gmacs"]["before"]:.3f} -> {s["full_size_gmacs"]["after"]:.3f} GMACs '
             f'({100 * (1 - s["full_size_gmacs"]["fraction"]):.1f} % fewer).' if s.get('full_size_gmacs') else ''),
          '',
          ('The attention computes each head from its own q/k/v, so the static model equals the masked '
           'model with the cut units at zero' if s['heads_separable'] else
           'The attention takes statistics across heads (e.g. Trial-105\'s whole-tensor min-max and '
           'normalisation), so cutting a head also changes the kept heads: the static model differs '
           'from the masked model with the cut units at zero by design') +
          f' (max |difference| of the logits on 256 validation images: {s["static_vs_masked_max_abs_diff"]:.2e}).',
          '', '## Per block', '',
          '| block | heads | head masks (kept) | hidden units | |unit mask| median [min, max] |',
          '|---|---|---|---|---|']
    for b in s['blocks']:
        hm = ', '.join(f'{v:.3f}' + ('' if j in b['kept_heads'] else ' (cut)') for j, v in enumerate(b['head_masks']))
        q = b['unit_mask_abs']
        L.append(f'| {b["block"]} | {b["heads_before"]} -> {b["heads_after"]} | {hm} | '
                 f'{b["hidden_before"]} -> {b["hidden_after"]} | {q["median"]:.3f} [{q["min"]:.3f}, {q["max"]:.3f}] |')
    steps = [f'mask search: {s["search"]["seconds"]:.0f} s' if 'seconds' in s['search'] else 'mask search: cached']
    if 'seconds' in pre:
        steps.insert(0, f'training: {pre["seconds"]:.0f} s')
    if ft:
        steps.append(f'fine-tuning: {ft["seconds"]:.0f} s')
    if ctl and 'seconds' in ctl['train']:
        steps.append(f'control: {ctl["train"]["seconds"]:.0f} s')
    L += ['', 'Time: ' + ', '.join(steps) + '.', '',
          'Rebuild the static model (`static_model.pth`, its state dict):', '', '```python',
          'import timm, torch, attnzero.models', _python(s),
          "model.load_state_dict(torch.load('static_model.pth'))", '```', '']
    with open(paths['md'], 'w', encoding='utf-8') as f:
        f.write('\n'.join(L))
    _plot(s, paths['png'])
    return paths


def _mask_lr(s: Dict[str, Any]) -> str:
    lr = s['search'].get('mask_lr')
    return 'as cached' if lr is None else f'{lr:.3g}'


def _python(s: Dict[str, Any]) -> str:
    t = s['timm']
    return (f"model = timm.create_model('attnzero_vit', arch={t['arch']!r}, "
            + ', '.join(f'{k}={v!r}' for k, v in t['kwargs'].items()) + ')')


def _load(v: Optional[Sequence[float]]) -> str:
    return 'n/a' if not v else ' '.join(f'{x:.2f}' for x in v)


def _plot(s: Dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for b, units, kept in zip(s['blocks'], s['unit_masks'], s['kept_units']):
        i = b['block']
        order = sorted(range(len(units)), key=lambda j: abs(units[j]))
        xs = [i + 0.8 * (r / max(1, len(units) - 1)) - 0.4 for r in range(len(units))]
        ax.scatter(xs, [abs(units[j]) for j in order], s=4,
                   c=['tab:blue' if j in set(kept) else 'lightgrey' for j in order])
        nh = len(b['head_masks'])
        for j, v in enumerate(b['head_masks']):
            ax.scatter([i + 0.12 * (j - (nh - 1) / 2)], [abs(v)], marker='D', s=40, edgecolors='k',
                       c='tab:red' if j in b['kept_heads'] else 'white', zorder=3)
    ax.set_xticks([b['block'] for b in s['blocks']])
    ax.set_xlabel('block (dots: MLP units by |mask|; diamonds: heads; pale: cut)')
    ax.set_ylabel('|mask| after the search')
    ax.set_title(f'masks (lam {s["lam"]}, {s["slim_epochs"]} epoch(s))')
    ax.grid(alpha=0.3)
    pts = [('before', s['before']), ('cut', s['cut']), ('fine-tuned', s['after'])]
    ax2.plot([p['flops'] / 1e6 for _, p in pts], [p['val'] for _, p in pts], 'o-')
    if s.get('control'):
        c = s['control']
        ax2.plot([c['flops'] / 1e6], [c['val']], 's', c='tab:grey')
        pts.append((f'control (+{c["epochs"]} ep.)', c))
    for name, p in pts:
        ax2.annotate(name, (p['flops'] / 1e6, p['val']), textcoords='offset points', xytext=(5, 5), fontsize=9)
    ax2.set_xlabel('MFLOPs per image')
    ax2.set_ylabel('validation accuracy')
    ax2.set_title(f'{100 * (1 - s["flops_fraction"]):.1f} % of the FLOPs cut')
    ax2.grid(alpha=0.3)
    fig.suptitle(f'ViT-Slim-style slimming: {s["shape_before"]} -> {s["shape_after"]} ({s["proxy"]})', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------- command line
SLIM_DOC = """ViT-Slim-style slimming of the proxy DeiT (issue 21): learnable soft masks on every head and
MLP hidden unit, trained with the model under an L1 budget; the smallest cut until the FLOPs are at
most --target of the original; a static (mask-free) attnzero_vit fine-tuned.

With no arguments besides --out: the default proxy DeiT (e32:hd16:h2,2,2,2,2,2,2,2:r2,2,2,2,2,2,2,2) with Trial-105
on the default proxy (scenes?train=14000&val=4000), trained for the config's epochs, masks searched
for 1 epoch, cut to 0.7 of the FLOPs, fine-tuned 1 epoch. Writes slim.md / slim.csv / slim.png /
summary.json, static_model.pth (state dict) and static_model.json (the timm.create_model call that
rebuilds it). Trained and searched models are cached in OUT/cache (another --target reuses them).

Examples::

    python tools/slim.py --out docs/slim/default
    python tools/slim.py --out /tmp/slim --target 0.5 --lam 1.0 --finetune-epochs 2
    python tools/slim.py --out /tmp/slim --attn softmax --shape e48:hd24:h2,2,2,2:r2,2,2,2
    python tools/slim.py --preset tiny --out /tmp/slim --shape e32:hd16:h2,2:r2,2    # seconds
"""
