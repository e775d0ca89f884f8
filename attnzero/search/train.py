"""Short proxy training of one candidate in one proxy ViT, with the rejection protocol.

:func:`train_proxy` is deterministic given its seed (fixed thread count, seeded init and data order,
torch deterministic algorithms) so that a resumed search reproduces an uninterrupted one.

Rejection protocol (thresholds in :class:`attnzero.search.config.SearchConfig`):

* ``nonfinite_loss`` -- the training loss is NaN/inf (checked every step, before the update);
* ``loss_not_decreasing`` -- after ``loss_check_frac`` of the steps, the mean loss of the latest
  window is not below ``(1 - min_loss_drop)`` x the mean of the first window;
* ``below_baseline`` -- after epoch ``checkpoint_epoch`` the validation accuracy is below
  ``chance + min_acc_ratio * (baseline_acc_at_that_epoch - chance)``.

A rejected run reports the compute it used; a completed run reports the full budget. With
``cfg.rejection`` off nothing is rejected and there is no checkpoint evaluation (its only use is the
``below_baseline`` test); a training that raises is still a ``crash``.

Every accuracy here is on the proxy's **validation** split (carved from its training data). A
completed run also records the model's predictions on the test images (``test_pred``, encoded
text) without reading a test label: the search scores them for its final Pareto front only
(:meth:`attnzero.search.proxies.ProxyData.test_accuracy`).
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F

from .archs import build_proxy_model, model_flops_per_image
from .config import SearchConfig
from .proxies import ProxyData, encode_predictions

__all__ = ['train_proxy', 'init_proxy_model', 'proxy_optimizer', 'deterministic_torch', 'steps_per_epoch',
           'REJECT_REASONS']

#: reasons a training run can be rejected for (the program check adds its own, prefixed ``check:``)
REJECT_REASONS = ('nonfinite_loss', 'loss_not_decreasing', 'below_baseline', 'crash')


class InjectedFault(RuntimeError):
    """Raised by the ``raise`` fault injection (tests)."""


@contextlib.contextmanager
def deterministic_torch(threads: int) -> Iterator[None]:
    """Fixed thread count + deterministic algorithms for the duration of one evaluation."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return math.ceil(n_train / batch_size)


def _predict(model: torch.nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Predicted classes of ``x`` in eval mode (the model's mode is restored)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + batch]).argmax(dim=1) for i in range(0, len(x), batch)])
    model.train(was)
    return pred


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((_predict(model, x) == y).double().mean()) if len(x) else 0.0


def _lr_at(step: int, total: int, base: float, warmup_frac: float) -> float:
    warm = max(1, int(round(warmup_frac * total))) if warmup_frac > 0 else 0
    if step < warm:
        return base * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def _seeded_model(arch: str, attn: str, genome: Optional[str], data: ProxyData, cfg: SearchConfig,
                  seed: int, shape: Optional[str] = None) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_proxy_model(arch, attn, genome, data.img_size, data.num_classes,
                              cfg.arch_overrides.get(arch), data.patch_size, shape=shape)
    if cfg.proxy_init == 'torch':
        for mod in model.modules():
            if isinstance(mod, torch.nn.Linear):
                mod.reset_parameters()
    return model


def _in_kernel(name: str) -> bool:
    return '.kernel.' in name or name.startswith('kernel.')


def init_proxy_model(arch: str, attn: str, genome: Optional[str], data: ProxyData, cfg: SearchConfig,
                     seed: int, shape: Optional[str] = None) -> torch.nn.Module:
    """The proxy ViT of one run, built and initialised as :func:`train_proxy` does (seeded;
    ``cfg.proxy_init == 'torch'`` re-initialises every Linear with PyTorch's default). With
    ``cfg.common_seed`` every parameter and buffer outside the attention kernels is that of the
    softmax model built from the same seed, so that candidates sharing a seed start from the same
    weights everywhere but in their attention. ``shape``: the ViT shape text of a joint-search
    candidate (:func:`attnzero.search.archs.build_proxy_model`; the softmax reference is built at
    that shape too)."""
    model = _seeded_model(arch, attn, genome, data, cfg, seed, shape)
    if cfg.common_seed and attn != 'softmax':
        ref = _seeded_model(arch, 'softmax', None, data, cfg, seed, shape).state_dict()
        own = model.state_dict()
        shared = {k: v for k, v in ref.items()
                  if not _in_kernel(k) and k in own and own[k].shape == v.shape}
        model.load_state_dict(shared, strict=False)
    return model


def proxy_optimizer(model: torch.nn.Module, cfg: SearchConfig) -> torch.optim.Optimizer:
    """The search's optimiser: AdamW at ``cfg.lr`` with weight decay on the weight matrices only
    (not on biases, norms or the position embedding)."""
    decay = [p for nm, p in model.named_parameters() if p.ndim > 1 and 'pos_embed' not in nm]
    no_decay = [p for nm, p in model.named_parameters() if not (p.ndim > 1 and 'pos_embed' not in nm)]
    return torch.optim.AdamW([dict(params=decay, weight_decay=cfg.weight_decay),
                              dict(params=no_decay, weight_decay=0.0)], lr=cfg.lr)


def _snapshot(step: int, perm: Optional[torch.Tensor], model: torch.nn.Module, opt: torch.optim.Optimizer,
              gen: torch.Generator, losses: List[float], res: Dict[str, Any]) -> bytes:
    """The training state of a paused :func:`train_proxy` run, as bytes (``torch.save``)."""
    buf = io.BytesIO()
    torch.save(dict(step=step, perm=perm, model=model.state_dict(), opt=opt.state_dict(),
                    gen=gen.get_state(), rng=torch.get_rng_state(), losses=list(losses),
                    ckpt_acc=res['ckpt_acc']), buf)
    return buf.getvalue()


def _restore(data: bytes, model: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator,
             losses: List[float], res: Dict[str, Any]) -> Tuple[int, Optional[torch.Tensor]]:
    """Load a :func:`_snapshot` into the freshly built run; returns ``(step, perm)``."""
    s = torch.load(io.BytesIO(data), weights_only=True)
    model.load_state_dict(s['model'])
    opt.load_state_dict(s['opt'])
    gen.set_state(s['gen'])
    torch.set_rng_state(s['rng'])
    losses.extend(s['losses'])
    res['ckpt_acc'] = s['ckpt_acc']
    return int(s['step']), s['perm']


def train_proxy(arch: str, attn: str, genome: Optional[str], cfg: SearchConfig, data: ProxyData,
                seed: int, baseline_ckpt_acc: Optional[float] = None, reject: bool = True,
                fault: Optional[str] = None, shape: Optional[str] = None,
                stop_epochs: Optional[float] = None, resume: Optional[bytes] = None) -> Dict[str, Any]:
    """Train the ``arch`` proxy with ``attn``/``genome`` (at the ViT ``shape`` of a joint-search
    candidate, if given) on ``data``; never raises for a bad candidate (a crash is a rejection
    with reason ``crash``).

    Returns a dict: ``arch``, ``status`` (``'ok'`` / ``'rejected'``), ``reason``, ``message``,
    ``acc`` (final validation accuracy; at rejection time for a rejected run), ``ckpt_acc``,
    ``test_pred`` (encoded test-set predictions of a completed run, else ``None``),
    ``steps``, ``samples`` (training images seen), ``eval_samples``, ``seconds``,
    ``flops_per_image``, ``gflops`` (3 x forward per training image + forward per test image;
    both ``None`` when the model's FLOPs could not be counted),
    ``loss_first``, ``loss_last``, ``cpu_seconds`` (CPU time of the process over the run: unlike
    ``seconds``, it does not grow when other work shares the cores).

    A run can be trained in segments (the successive-halving rungs of the search):
    ``stop_epochs`` pauses it after that many epochs of the *full* budget's schedule (rounded up to
    a whole step; ``None``: train to the end). A paused run is ``status='ok'`` with
    ``paused=True``, ``acc`` measured on the validation set at the pause, and ``state``: the bytes
    of its training state (model, optimiser, data order, random generators, losses). ``resume``
    continues from such bytes, so that the segments together are exactly the one-piece training.
    ``samples``, ``eval_samples``, ``seconds``, ``cpu_seconds`` and ``gflops`` are the segment's
    own; ``steps`` counts from the start of the training.
    """
    t0 = time.perf_counter()
    c0 = time.process_time()
    n = len(data.train_x)
    spe = steps_per_epoch(n, cfg.batch_size)
    total = cfg.epochs * spe
    stop_step = total if stop_epochs is None else min(total, max(1, math.ceil(stop_epochs * spe - 1e-9)))
    check_step = max(2, int(math.ceil(cfg.loss_check_frac * total)))
    window = max(1, check_step // 4)
    res: Dict[str, Any] = dict(arch=arch, status='ok', reason='', message='', acc=None,
                               ckpt_acc=None, steps=0, samples=0, eval_samples=0, seconds=0.0,
                               flops_per_image=0.0, gflops=0.0, loss_first=None, loss_last=None,
                               total_steps=total, test_pred=None)
    losses: List[float] = []

    def finish(status: str, reason: str = '', message: str = '') -> Dict[str, Any]:
        res.update(status=status, reason=reason, message=message)
        res['seconds'] = time.perf_counter() - t0
        res['cpu_seconds'] = time.process_time() - c0
        fpi = res['flops_per_image']
        res['gflops'] = None if fpi is None else (3 * res['samples'] + res['eval_samples']) * fpi / 1e9
        if losses:
            res['loss_first'] = float(sum(losses[:window]) / len(losses[:window]))
            res['loss_last'] = float(sum(losses[-window:]) / len(losses[-window:]))
        return res

    with deterministic_torch(cfg.threads):
        try:
            model = init_proxy_model(arch, attn, genome, data, cfg, seed, shape)
            res['flops_per_image'] = model_flops_per_image(model, data.img_size)
            opt = proxy_optimizer(model, cfg)
            gen = torch.Generator().manual_seed(seed)
            step, perm = 0, None
            if resume is not None:
                step, perm = _restore(resume, model, opt, gen, losses, res)
                res['steps'] = step
            model.train()
            while step < stop_step:
                pos = step % spe
                if pos == 0:   # a new epoch: its order of the training images
                    perm = torch.randperm(n, generator=gen)
                idx = perm[pos * cfg.batch_size:(pos + 1) * cfg.batch_size]
                for group in opt.param_groups:
                    group['lr'] = _lr_at(step, total, cfg.lr, cfg.warmup_frac)
                if fault == 'hang':
                    time.sleep(10 ** 6)
                if fault == 'exit':
                    os._exit(17)
                if fault == 'raise' and step == 1:
                    raise InjectedFault('injected crash (fault_injection=raise)')
                loss = F.cross_entropy(model(data.train_x[idx]), data.train_y[idx])
                if fault == 'nan' and step >= 1:
                    loss = loss * float('nan')
                res['samples'] += len(idx)
                step += 1
                res['steps'] = step
                lv = float(loss.detach())
                losses.append(lv)
                if not math.isfinite(lv):
                    if reject and cfg.reject_nonfinite:
                        return finish('rejected', 'nonfinite_loss', f'loss {lv} at step {step}')
                else:
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    opt.step()
                    if reject and step == check_step and step < total:
                        first = sum(losses[:window]) / window
                        last = sum(losses[step - window:step]) / window
                        if not last < first * (1.0 - cfg.min_loss_drop):
                            return finish('rejected', 'loss_not_decreasing',
                                          f'mean loss {last:.4f} over steps {step - window + 1}-{step} '
                                          f'vs {first:.4f} over the first {window}')
                epoch = step // spe
                if step % spe == 0 and epoch == cfg.checkpoint_epoch and cfg.rejection:
                    acc = _accuracy(model, data.val_x, data.val_y)
                    res['eval_samples'] += len(data.val_x)
                    res['ckpt_acc'] = acc
                    res['acc'] = acc
                    if reject and baseline_ckpt_acc is not None and epoch < cfg.epochs:
                        thr = data.chance + cfg.min_acc_ratio * (baseline_ckpt_acc - data.chance)
                        if acc < thr:
                            return finish('rejected', 'below_baseline',
                                          f'accuracy {acc:.4f} after epoch {epoch} < threshold '
                                          f'{thr:.4f} (baseline {baseline_ckpt_acc:.4f})')
            if step < total:   # paused at a rung: the accuracy there, and the state to continue from
                if not (cfg.rejection and step == cfg.checkpoint_epoch * spe):
                    res['acc'] = _accuracy(model, data.val_x, data.val_y)
                    res['eval_samples'] += len(data.val_x)
                res.update(paused=True, state=_snapshot(step, perm, model, opt, gen, losses, res))
                return finish('ok')
            if res['ckpt_acc'] is None or cfg.checkpoint_epoch != cfg.epochs:
                res['acc'] = _accuracy(model, data.val_x, data.val_y)
                res['eval_samples'] += len(data.val_x)
            res['test_pred'] = encode_predictions(_predict(model, data.test_x))
            res['eval_samples'] += len(data.test_x)
            return finish('ok')
        except Exception as e:  # noqa: BLE001 - a crashing candidate is a rejection, not an error
            return finish('rejected', 'crash', f'{type(e).__name__}: {e}'[:500])
