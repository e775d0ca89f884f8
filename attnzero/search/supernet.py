"""Weight-sharing supernet for the shape part of the joint search (AutoFormer's weight entanglement).

One DeiT at the **largest** shape of a :class:`~attnzero.space.shape.ShapeSpace` holds every weight;
a subnet (any :class:`~attnzero.space.shape.ViTShape` of the space) uses the leading slices of them
(AutoFormer, Chen et al. 2021, "weight entanglement"):

* patch embedding, cls token, position embedding, every LayerNorm, the classifier: the first
  ``embed_dim`` channels;
* depth: the first ``depth`` blocks;
* a block's fused ``qkv`` projection (laid out ``(3, heads, head_dim)``): the first
  ``heads * head_dim`` channels of *each* of q, k and v; the output projection the same input
  channels; the attention kernel's own parameters (AttnZero's depthwise conv on V) their first
  channels;
* the MLP: its first ``int(embed_dim * ratio)`` hidden units.

Every other parameter is sliced the same way: the leading part along every axis. A subnet runs
the project's own code: :class:`Supernet` keeps, on the ``meta`` device (no memory, no random
numbers drawn), one proxy DeiT per (width, heads, ratio) of the space as a template and calls the
DeiT assembled from their blocks with :func:`torch.func.functional_call` on the sliced weights, so
the attention kernels, blocks, pooling and head are those of :class:`attnzero.models.DeiT` (no
attention maths here). :meth:`Supernet.extract` copies a subnet's slices into a stand-alone DeiT
built at that shape, which computes exactly what the supernet computes in that configuration.

Training (:func:`train_supernet`) is AutoFormer's: every step samples one subnet
(:meth:`ShapeSpace.sample`: depth, width and each block's heads and ratio uniformly, as AutoFormer
samples) from a seeded generator and updates the shared weights with the proxy's own optimiser,
schedule, batch size and data order (:func:`attnzero.search.train.proxy_optimizer`, ``_lr_at``,
:func:`~attnzero.search.train.deterministic_torch`). Its budget is :data:`SUPERNET_EPOCH_FACTOR`
times the config's epochs by default: AutoFormer trains its supernet for 500 epochs against 300 for
a stand-alone model (1.67x), because each weight is updated at every step but by a different
subnet; 2x is that ratio rounded to a whole factor, and still costs what two stand-alone trainings
cost (less: the sampled subnet is on average smaller than the largest), against one training per
candidate without the supernet. A subnet's score is its validation accuracy with the inherited
weights, no fine-tuning.

:func:`load_or_train` keeps a trained supernet in a checkpoint file (atomic write), so a resumed run
reuses it; :func:`supernet_scores` is the evaluator of a list of shapes, and :func:`candidate_task`
the joint search's (``SearchConfig.shape_evaluator='supernet'``: one supernet per attention genome,
trained once and kept in ``RUN_DIR/supernets/``). The measurement of how well
these scores rank subnets against stand-alone training is :mod:`attnzero.search.supernet_fidelity`
(``tools/supernet.py``).
"""
from __future__ import annotations

import contextlib
import copy
import fcntl
import io
import json
import math
import os
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from attnzero.attention import ATTENTIONS
from attnzero.io import atomic_write_bytes
from attnzero.space import TRIAL_105, Genome
from attnzero.space.shape import SHAPE_SPACES, ShapeError, ShapeSpace, ViTShape

from .archs import build_proxy_model, model_flops_per_image
from .config import SEARCH_ONLY_FIELDS, SearchConfig, with_defaults
from .evaluate import _load, candidate_parts, candidate_seed, derive_seed
from .proxies import ProxyData
from .train import _accuracy, _lr_at, _predict, deterministic_torch, init_proxy_model, proxy_optimizer

__all__ = ['Supernet', 'SupernetError', 'SUPERNET_EPOCH_FACTOR', 'largest_shape', 'resolve_attention',
           'supernet_epochs', 'supernet_seed', 'train_supernet', 'score_subnets', 'load_or_train',
           'supernet_scores', 'save_supernet', 'load_supernet', 'attention_label', 'supernet_identity',
           'ShapeError', 'candidate_task', 'supernet_task', 'supernet_path']

#: the supernet's training budget in multiples of the config's epochs (see the module docstring)
SUPERNET_EPOCH_FACTOR = 2
#: the checkpoint format written by :func:`save_supernet`
CHECKPOINT_FORMAT = 1

ShapeLike = Union[str, ViTShape]


class SupernetError(ValueError):
    """Bad supernet settings, or a checkpoint of another supernet (names the value)."""


def resolve_attention(attention: Union[None, str, Genome]) -> Tuple[str, Optional[str]]:
    """``(zoo attention name, canonical genome text or None)`` of a zoo name (``'softmax'``,
    ``'linear'``, ...) or an AttnZero genome (text or :class:`Genome`); ``None``: Trial-105."""
    if attention is None:
        return 'attnzero', TRIAL_105.to_string()
    if isinstance(attention, Genome):
        return 'attnzero', attention.to_string()
    text = str(attention).strip()
    if text in ATTENTIONS and text != 'attnzero':
        return text, None
    try:
        return 'attnzero', Genome.parse(text).to_string()
    except Exception as e:  # noqa: BLE001 - one message for both readings
        raise SupernetError(f'attention {text!r} is neither a zoo attention ({", ".join(sorted(ATTENTIONS))}) '
                            f'nor an AttnZero genome text: {e}') from None


def attention_label(attn: str, genome: Optional[str]) -> str:
    """The text that names an attention: the genome for AttnZero, else the zoo name."""
    return genome if attn == 'attnzero' else attn


def largest_shape(space: ShapeSpace) -> ViTShape:
    """The shape every subnet of ``space`` is a leading slice of: widest, deepest, most heads,
    largest MLP ratio in every block."""
    depth = max(space.depths)
    return ViTShape(max(space.embed_dims), (max(space.num_heads),) * depth, (max(space.mlp_ratios),) * depth,
                    space.head_dim)


def _slice(full: torch.Tensor, shape: Sequence[int], name: str, qkv_thirds: bool) -> torch.Tensor:
    """The leading ``shape`` part of ``full``; a fused q/k/v tensor (``qkv_thirds``: first axis
    laid out ``(3, heads * head_dim)``) takes the leading part of each third."""
    if len(shape) != full.dim() or any(s > f for s, f in zip(shape, full.shape)):
        raise SupernetError(f'{name}: a subnet needs {tuple(shape)} of the supernet\'s {tuple(full.shape)}')
    if qkv_thirds:
        a = shape[0] // 3
        thirds = full.reshape(3, full.shape[0] // 3, *full.shape[1:])
        return thirds[(slice(None), slice(0, a)) + tuple(slice(0, s) for s in shape[1:])].reshape(shape)
    return full[tuple(slice(0, s) for s in shape)]


def _is_qkv(name: str) -> bool:
    return name.endswith('attn.qkv.weight') or name.endswith('attn.qkv.bias')


class _Subnet(nn.Module):
    """One subnet of a supernet as a module (``forward(x)``; shares the supernet's weights)."""

    def __init__(self, supernet: 'Supernet', shape: ViTShape) -> None:
        super().__init__()
        self.supernet = supernet
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.shape)


class Supernet(nn.Module):
    """The weight-entangled supernet of ``space`` with one attention in every block.

    Args:
        space: the shape space (a :class:`ShapeSpace` or a name of :data:`SHAPE_SPACES`).
        attention: a zoo attention name or an AttnZero genome (text or :class:`Genome`); default
            Trial-105.
        img_size, patch_size, num_classes: the proxy's (:class:`attnzero.search.proxies.ProxyData`).
        overrides: the DeiT proxy's constructor overrides (``SearchConfig.arch_overrides['deit']``;
            its width, depth and heads are the shape's).
        model: the largest DeiT's weights (a DeiT at :func:`largest_shape`); default: built here
            with the model's own initialisation (:meth:`for_config` initialises as the search does).

    ``forward(x, shape=None)``: the logits of subnet ``shape`` (default: the largest); a shape
    outside the space raises :class:`ShapeError` naming it. The parameters are those of ``model``
    (``self.model``), so ``state_dict`` and optimisers see the largest DeiT's.
    """

    def __init__(self, space: Union[str, ShapeSpace], attention: Union[None, str, Genome] = None, *,
                 img_size: int, patch_size: int, num_classes: int,
                 overrides: Optional[Dict[str, Any]] = None, model: Optional[nn.Module] = None) -> None:
        super().__init__()
        if isinstance(space, str):
            if space not in SHAPE_SPACES:
                raise SupernetError(f'unknown shape space {space!r}; known: {", ".join(SHAPE_SPACES)}')
            space = SHAPE_SPACES[space]
        self.space = space
        self.attn, self.genome = resolve_attention(attention)
        self.img_size, self.patch_size, self.num_classes = int(img_size), int(patch_size), int(num_classes)
        self.overrides = dict(overrides or {})
        self.largest = largest_shape(space)
        if model is None:
            model = self._build(self.largest)
        got = getattr(model, 'vit_shape', None)
        if got != self.largest:
            raise SupernetError(f'the supernet\'s model must have the largest shape of the {space.name!r} '
                                f'space, {self.largest}; got {got}')
        self.model = model
        # templates live outside the module tree (meta tensors: no memory, never trained or saved)
        self._templates: Dict[Tuple[int, int, float], nn.Module] = {}
        self._checked: Dict[Any, ViTShape] = {}

    @classmethod
    def for_config(cls, cfg: SearchConfig, data: ProxyData, attention: Union[None, str, Genome] = None,
                   seed: Optional[int] = None, space: Union[None, str, ShapeSpace] = None) -> 'Supernet':
        """The supernet of ``cfg``'s shape space (or ``space``) on ``data``, its largest DeiT
        initialised as the search initialises a candidate (:func:`init_proxy_model`: seeded,
        ``proxy_init``, common seeds) from ``seed`` (default :func:`supernet_seed`)."""
        attn, genome = resolve_attention(attention)
        space = space if space is not None else cfg.shape_space
        space_obj = SHAPE_SPACES[space] if isinstance(space, str) else space
        if seed is None:
            seed = supernet_seed(cfg, attn, genome)
        model = init_proxy_model('deit', attn, genome, data, cfg, seed, largest_shape(space_obj).to_string())
        return cls(space_obj, attention_label(attn, genome), img_size=data.img_size,
                   patch_size=data.patch_size, num_classes=data.num_classes,
                   overrides=cfg.arch_overrides.get('deit'), model=model)

    # ---- shapes ----------------------------------------------------------------------------
    def check(self, shape: ShapeLike) -> ViTShape:
        """``shape`` parsed and checked to be a subnet of this supernet (:class:`ShapeError`
        naming it otherwise)."""
        got = self._checked.get(shape)
        if got is None:
            got = self.space.check(shape)
            self._checked[shape] = got
        return got

    def _build(self, shape: ViTShape) -> nn.Module:
        return build_proxy_model('deit', self.attn, self.genome, self.img_size, self.num_classes,
                                 self.overrides, self.patch_size, shape=shape.to_string())

    def _template(self, embed: int, heads: int, ratio: float) -> nn.Module:
        key = (embed, heads, ratio)
        t = self._templates.get(key)
        if t is None:
            depth = max(self.space.depths)
            with torch.device('meta'):
                t = self._build(ViTShape(embed, (heads,) * depth, (ratio,) * depth, self.space.head_dim))
            self._templates[key] = t
        return t

    def _view(self, shape: ViTShape) -> nn.Module:
        """A meta DeiT of ``shape`` assembled from the templates' blocks (no copy of any weight)."""
        shell = self._template(shape.embed_dim, shape.num_heads[0], shape.mlp_ratio[0])
        view = copy.copy(shell)
        view._modules = dict(shell._modules)
        view._modules['blocks'] = nn.ModuleList(
            [self._template(shape.embed_dim, h, r).blocks[i]
             for i, (h, r) in enumerate(zip(shape.num_heads, shape.mlp_ratio))])
        view.train(self.training)
        return view

    def subnet_state(self, shape: ShapeLike) -> Dict[str, torch.Tensor]:
        """The subnet's parameters and buffers under a DeiT's names: slices (views where possible)
        of the supernet's, so gradients reach the shared weights."""
        shape = self.check(shape)
        view = self._view(shape)
        full = dict(self.model.named_parameters())
        full.update(self.model.named_buffers())
        out = {}
        for name, t in list(view.named_parameters()) + list(view.named_buffers()):
            if name not in full:
                raise SupernetError(f'{name}: the subnet {shape} has a tensor the supernet lacks')
            out[name] = _slice(full[name], t.shape, name, _is_qkv(name))
        return out

    # ---- forward and extraction --------------------------------------------------------------
    def forward(self, x: torch.Tensor, shape: Optional[ShapeLike] = None) -> torch.Tensor:
        if shape is None:
            return self.model(x)
        shape = self.check(shape)
        if shape == self.largest:
            return self.model(x)
        return functional_call(self._view(shape), self.subnet_state(shape), (x,), strict=True)

    def subnet(self, shape: ShapeLike) -> nn.Module:
        """Subnet ``shape`` as a module ``forward(x)`` on the shared weights (no copy)."""
        return _Subnet(self, self.check(shape))

    def extract(self, shape: ShapeLike) -> nn.Module:
        """A stand-alone :class:`attnzero.models.DeiT` of ``shape`` holding copies of its slices
        (same outputs as the supernet in that configuration); built without drawing from torch's
        random generator."""
        shape = self.check(shape)
        state = {k: v.detach().clone() for k, v in self.subnet_state(shape).items()}
        with torch.device('meta'):
            model = self._build(shape)
        model.load_state_dict(state, strict=True, assign=True)
        return model.train(self.training)


# ---- training and scoring ----------------------------------------------------------------------------
def supernet_epochs(cfg: SearchConfig, epochs: Optional[int] = None) -> int:
    """The supernet's training epochs: ``epochs`` if given, else :data:`SUPERNET_EPOCH_FACTOR` x
    ``cfg.epochs``."""
    e = SUPERNET_EPOCH_FACTOR * cfg.epochs if epochs is None else int(epochs)
    if e < 1:
        raise SupernetError(f'supernet epochs={epochs}: must be >= 1')
    return e


def supernet_seed(cfg: SearchConfig, attn: str, genome: Optional[str]) -> int:
    """The supernet's seed: with ``cfg.common_seed`` the search's common seed of the DeiT proxy
    (so its largest DeiT starts from the weights a stand-alone candidate of that shape starts
    from), else one derived from the attention."""
    return candidate_seed(cfg, f'supernet:{attention_label(attn, genome)}', 'deit')


def train_supernet(net: Supernet, cfg: SearchConfig, data: ProxyData, seed: int,
                   epochs: Optional[int] = None, progress: bool = False) -> Dict[str, Any]:
    """Train ``net`` in place, AutoFormer style (one uniformly sampled subnet per step; see the
    module docstring), deterministic given ``seed``. A step with a non-finite loss is skipped
    (counted). Returns ``epochs``, ``steps``, ``nonfinite_steps``, ``samples``, ``loss_first`` /
    ``loss_last`` (mean of the first / last 10 % of steps), ``seconds``, ``cpu_seconds``."""
    t0, c0 = time.perf_counter(), time.process_time()
    epochs = supernet_epochs(cfg, epochs)
    n = len(data.train_x)
    spe = math.ceil(n / cfg.batch_size)
    total = epochs * spe
    losses: List[float] = []
    skipped = samples = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc='supernet steps', unit='step', dynamic_ncols=True)
    with deterministic_torch(cfg.threads):
        opt = proxy_optimizer(net.model, cfg)
        gen = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(derive_seed(seed, 'supernet-subnets'))
        params = list(net.model.parameters())
        net.train()
        step = 0
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, cfg.batch_size):
                idx = perm[i:i + cfg.batch_size]
                shape = net.space.sample(rng)
                for group in opt.param_groups:
                    group['lr'] = _lr_at(step, total, cfg.lr, cfg.warmup_frac)
                loss = F.cross_entropy(net(data.train_x[idx], shape), data.train_y[idx])
                step += 1
                samples += len(idx)
                lv = float(loss.detach())
                losses.append(lv)
                if bar is not None:
                    bar.update(1)
                if not math.isfinite(lv):
                    skipped += 1
                    continue
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
    if bar is not None:
        bar.close()
    w = max(1, len(losses) // 10)
    return dict(epochs=epochs, steps=step, nonfinite_steps=skipped, samples=samples, seed=seed,
                loss_first=float(np.mean(losses[:w])), loss_last=float(np.mean(losses[-w:])),
                seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0)


def score_subnets(net: Supernet, shapes: Iterable[ShapeLike], data: ProxyData, threads: int = 1,
                  test_predictions: bool = False) -> Dict[str, Dict[str, Any]]:
    """Validation accuracy of each subnet with the inherited weights (no fine-tuning): ``{shape
    text: {'acc', 'seconds'[, 'test_pred']}}``. Every shape is checked first (a bad one raises
    before anything is scored)."""
    from .proxies import encode_predictions

    checked = [net.check(s) for s in shapes]
    out: Dict[str, Dict[str, Any]] = {}
    with deterministic_torch(threads):
        for s in checked:
            t0 = time.perf_counter()
            sub = net.subnet(s)
            rec: Dict[str, Any] = dict(acc=_accuracy(sub, data.val_x, data.val_y))
            if test_predictions:
                rec['test_pred'] = encode_predictions(_predict(sub, data.test_x))
            rec['seconds'] = time.perf_counter() - t0
            out[s.to_string()] = rec
    return out


# ---- checkpoints -------------------------------------------------------------------------------------
#: SearchConfig fields that change nothing the supernet trains (``shape_space`` does: it is kept)
_NOT_TRAINED = frozenset(SEARCH_ONLY_FIELDS + ('cost', 'cost_tokens', 'cost_head_dim', 'rejection',
                                               'checkpoint_epoch', 'reject_nonfinite', 'loss_check_frac',
                                               'min_loss_drop', 'program_check')) - {'shape_space'}


def supernet_identity(cfg: SearchConfig, attn: str, genome: Optional[str], epochs: int, seed: int) -> Dict[str, Any]:
    """What a trained supernet depends on (stored with it; a checkpoint of other settings is refused)."""
    trained = {k: v for k, v in with_defaults(cfg.to_dict()).items() if k not in _NOT_TRAINED}
    return dict(format=CHECKPOINT_FORMAT, attention=attention_label(attn, genome), epochs=int(epochs),
                seed=int(seed), config=trained)


def save_supernet(path: str, net: Supernet, identity: Dict[str, Any], info: Dict[str, Any]) -> None:
    """``net``'s weights with ``identity`` and the training ``info``, written atomically."""
    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in net.model.state_dict().items()}
    torch.save(dict(identity=identity, info=info, state_dict=state), buf)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def load_supernet(path: str) -> Dict[str, Any]:
    """The checkpoint at ``path``: ``{'identity', 'info', 'state_dict'}``."""
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - a torn or foreign file
        raise SupernetError(f'{path}: not a supernet checkpoint ({type(e).__name__}: {e})') from None
    if not isinstance(ckpt, dict) or ckpt.get('identity', {}).get('format') != CHECKPOINT_FORMAT:
        raise SupernetError(f'{path}: not a supernet checkpoint of format {CHECKPOINT_FORMAT}')
    return ckpt


def _differences(a: Dict[str, Any], b: Dict[str, Any]) -> List[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        if k == 'config':
            out += [f'config.{c}' for c in sorted(set(a.get(k, {})) | set(b.get(k, {})))
                    if a.get(k, {}).get(c) != b.get(k, {}).get(c)]
        elif a.get(k) != b.get(k):
            out.append(k)
    return out


def load_or_train(cfg: SearchConfig, data: ProxyData, attention: Union[None, str, Genome] = None,
                  path: Optional[str] = None, epochs: Optional[int] = None,
                  progress: bool = False) -> Tuple[Supernet, Dict[str, Any]]:
    """The trained supernet of ``cfg`` (its shape space, proxy, optimiser and schedule) and
    ``attention``: read from ``path`` when that holds one of the same settings, else trained
    (:func:`train_supernet`) and, with ``path``, saved there. Returns ``(supernet, info)``;
    ``info['reused']`` tells which. A ``path`` holding a supernet of other settings raises
    :class:`SupernetError` naming what differs (nothing is overwritten)."""
    attn, genome = resolve_attention(attention)
    seed = supernet_seed(cfg, attn, genome)
    ep = supernet_epochs(cfg, epochs)
    ident = json.loads(json.dumps(supernet_identity(cfg, attn, genome, ep, seed)))  # as stored
    net = Supernet.for_config(cfg, data, attention_label(attn, genome), seed)
    if path is not None and os.path.exists(path):
        ckpt = load_supernet(path)
        diff = _differences(ckpt['identity'], ident)
        if diff:
            raise SupernetError(f'{path} holds a supernet of other settings ({", ".join(diff)} differ); '
                                f'remove it or use another folder')
        net.model.load_state_dict(ckpt['state_dict'])
        return net, dict(ckpt['info'], reused=True)
    info = train_supernet(net, cfg, data, seed, ep, progress=progress)
    if path is not None:
        save_supernet(path, net, ident, info)
    return net, dict(info, reused=False)



def supernet_scores(cfg: SearchConfig, shapes: Sequence[ShapeLike], data: ProxyData,
                    attention: Union[None, str, Genome] = None, path: Optional[str] = None,
                    epochs: Optional[int] = None, progress: bool = False) -> Dict[str, Any]:
    """The supernet evaluator of the shape part: train the supernet of ``cfg`` and ``attention``
    once (or reuse the one at ``path``) and score every shape of ``shapes`` with inherited
    weights. Returns ``{'scores': {shape text: validation accuracy}, 'train': info}``. A shape
    outside ``cfg.shape_space`` raises :class:`ShapeError` naming it, before any training."""
    space = SHAPE_SPACES[cfg.shape_space]
    checked = [space.check(s) for s in shapes]
    net, info = load_or_train(cfg, data, attention, path, epochs, progress)
    scored = score_subnets(net, checked, data, cfg.threads)
    return dict(scores={k: v['acc'] for k, v in scored.items()}, train=info)



# ---- the joint search's evaluator ---------------------------------------------------------------------
def supernet_path(supernet_dir: str, genome: str) -> str:
    """Where the joint search keeps the supernet of ``genome``: ``<dir>/<genome hash>.pt``."""
    return os.path.join(supernet_dir, f'{Genome.parse(genome).hash}.pt')


@contextlib.contextmanager
def _locked(path: str):
    """An exclusive lock on ``path`` (created) across processes: a worker that needs a supernet
    another worker is training waits for it instead of training it again."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'a') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def supernet_task(payload: Dict[str, Any]) -> Dict[str, Any]:
    """Worker entry point of the joint search with ``shape_evaluator='supernet'`` (the runner
    dispatches it in place of :func:`attnzero.search.evaluate.training_task`, same payload plus
    ``supernet_dir``): :func:`candidate_task` on the payload's config and proxy."""
    cfg, data = _load(payload['config'])
    return candidate_task(payload, cfg, data)


def candidate_task(payload: Dict[str, Any], cfg: SearchConfig, data: ProxyData) -> Dict[str, Any]:
    """A joint candidate scored by the supernet of its genome (``cfg.shape_evaluator ==
    'supernet'``; called by :func:`supernet_task`, :func:`attnzero.search.evaluate.training_task`'s payload plus
    ``supernet_dir``): the supernet is read from ``supernet_path(supernet_dir, genome)`` or trained
    there (once: concurrent workers wait on a lock), and the candidate's score is the validation
    accuracy of its shape with inherited weights. Returns what ``training_task`` returns, with one
    ``per_arch`` entry of status ``'supernet'`` (it is no full-budget training, so the search's
    compute report does not take it for one) holding ``acc``, ``test_pred``, ``supernet``
    (checkpoint path, ``reused``) and, for the candidate that trained the supernet, its steps,
    samples, losses and seconds (its GFLOPs are unknown: ``None``, never estimated). A non-finite
    training loss rejects the candidate (``nonfinite_loss``) when ``cfg.rejection`` and
    ``cfg.reject_nonfinite`` are on; an error is a ``crash``."""
    t0, c0 = time.perf_counter(), time.process_time()
    shape, genome = candidate_parts(cfg, payload['genome'])
    pa: Dict[str, Any] = dict(arch='deit', status='supernet', reason='', message='', acc=None, ckpt_acc=None,
                              test_pred=None, steps=0, samples=0, eval_samples=0, seconds=0.0, cpu_seconds=0.0,
                              flops_per_image=None, gflops=None, loss_first=None, loss_last=None, total_steps=0)
    status, reason, message = 'ok', '', ''
    try:
        path = supernet_path(payload['supernet_dir'], genome)
        with _locked(path + '.lock'):
            net, info = load_or_train(cfg, data, genome, path)
        rec = score_subnets(net, [shape], data, cfg.threads, test_predictions=True)[shape]
        fpi = model_flops_per_image(net.extract(shape), data.img_size)
        n_eval = len(data.val_x) + len(data.test_x)
        pa.update(acc=rec['acc'], test_pred=rec['test_pred'], eval_samples=n_eval, flops_per_image=fpi,
                  supernet=dict(path=os.path.basename(path), reused=info['reused'], epochs=info['epochs'],
                                seconds=info['seconds'], nonfinite_steps=info['nonfinite_steps']))
        if info['reused']:
            pa['gflops'] = None if fpi is None else n_eval * fpi / 1e9
        else:
            pa.update(steps=info['steps'], samples=info['samples'], total_steps=info['steps'],
                      loss_first=info['loss_first'], loss_last=info['loss_last'])
        if info['nonfinite_steps'] and cfg.rejection and cfg.reject_nonfinite:
            status, reason = 'rejected', 'nonfinite_loss'
            message = f'deit: the supernet of this genome had {info["nonfinite_steps"]} non-finite training losses'
    except Exception as e:  # noqa: BLE001 - a crashing candidate is a rejection, not an error
        status, reason, message = 'rejected', 'crash', f'deit: {type(e).__name__}: {e}'[:500]
    pa.update(seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0)
    if status != 'ok':
        pa.update(status='rejected', reason=reason, message=message)
    return dict(status=status, reason=reason, message=message, per_arch=[pa], seconds=pa['seconds'],
                cpu_seconds=pa['cpu_seconds'], gflops=pa['gflops'], samples=pa['samples'])
