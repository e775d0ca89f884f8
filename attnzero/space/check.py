"""Program check: cheap tests that reject a candidate attention before any training.

:func:`check_program` runs, in order (the first failure decides the reason):

1. static analysis (:meth:`Genome.complexity`): ``invalid`` / ``quadratic`` (unless allowed);
2. compile;
3. forward on small random float32 inputs: no exception, right shape, finite output;
4. backward of a random projection of the output: finite gradients, non-zero for each of
   ``q``, ``k`` and ``v`` (an attention ignoring an input is rejected);
5. token mixing: the output at token 0 depends on the inputs at other tokens;
6. batch independence: a sample gives the same output alone and inside a batch -- skipped (and
   recorded in :attr:`CheckResult.skipped`) if the genome uses an original batch-global operator.

Sizes are chosen pairwise different (and different from ``2d`` and ``d+1``) so that no shape
coincidence can make an ill-formed program run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Dict, Optional, Tuple

import torch

from .cost import Complexity
from .genome import Genome

__all__ = ['Reason', 'CheckResult', 'check_program', 'static_check']


class Reason(str, Enum):
    """Why a program was rejected (``OK`` if it was not)."""

    OK = 'ok'
    INVALID = 'invalid'                  # static shape error / wrong output shape / batch axis
    QUADRATIC = 'quadratic'              # an N x N intermediate (not allowed by default)
    COMPILE_ERROR = 'compile_error'
    RUNTIME_ERROR = 'runtime_error'      # forward or backward raised
    WRONG_SHAPE = 'wrong_shape'
    NONFINITE_OUTPUT = 'nonfinite_output'
    NONFINITE_GRAD = 'nonfinite_grad'
    IGNORES_INPUT = 'ignores_input'      # zero gradient for q, k or v
    NO_TOKEN_MIXING = 'no_token_mixing'
    BATCH_DEPENDENT = 'batch_dependent'


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check_program`.

    Attributes:
        ok: passed every check.
        reason: a :class:`Reason`.
        message: details (which input, which node, ...).
        timings: seconds per stage (``static``, ``compile``, ``run``, ``total``).
        skipped: checks not applied (``'batch_independence'`` for batch-global genomes).
        complexity: the static analysis.
    """

    ok: bool
    reason: Reason
    message: str = ''
    timings: Dict[str, float] = field(default_factory=dict)
    skipped: Tuple[str, ...] = ()
    complexity: Optional[Complexity] = None

    def __bool__(self) -> bool:
        return self.ok


def static_check(genome: Genome, allow_quadratic: bool = False,
                 distinct_kv: bool = False) -> Tuple[Reason, str]:
    """Static part of the check only: ``(Reason.OK, '')`` or the rejection reason and message."""
    cx = genome.complexity(distinct_kv)
    if cx.kind == 'invalid':
        return Reason.INVALID, f'{cx.code} at {cx.where}: {cx.reason}'
    if cx.kind == 'quadratic' and not allow_quadratic:
        return Reason.QUADRATIC, f'at {cx.where}: {cx.reason}'
    return Reason.OK, ''


def _grad_nonzero(g: Optional[torch.Tensor], tol: float) -> bool:
    return g is not None and bool(g.abs().max() > tol)


def check_program(genome: Genome, *, allow_quadratic: bool = False, distinct_kv: bool = False,
                  batch: int = 3, heads: int = 2, tokens: int = 13, head_dim: int = 5,
                  seed: int = 0, grad_tol: float = 1e-12, batch_rtol: float = 1e-4,
                  batch_atol: float = 1e-5,
                  program: Optional[Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = None
                  ) -> CheckResult:
    """Check ``genome`` (see the module docstring). Never raises for a bad genome.

    Args:
        genome: the candidate.
        allow_quadratic: accept quadratic genomes (e.g. to check a softmax baseline).
        distinct_kv: keys/values get their own token count (``tokens + 4``).
        batch, heads, tokens, head_dim: probe sizes (keep them pairwise different).
        seed: seed of the probe inputs.
        grad_tol: a gradient whose max-abs is at most this counts as zero.
        batch_rtol, batch_atol: tolerance of the batch-independence comparison.
        program: check this callable instead of ``genome.compile()`` (e.g. a module wrapping the
            genome); the static checks still use ``genome``.
    """
    t0 = time.perf_counter()
    timings: Dict[str, float] = {}
    skipped: Tuple[str, ...] = ()
    cx: Optional[Complexity] = None

    def done(reason: Reason, message: str = '') -> CheckResult:
        timings['total'] = time.perf_counter() - t0
        return CheckResult(reason is Reason.OK, reason, message, timings, skipped, cx)

    reason, msg = static_check(genome, allow_quadratic, distinct_kv)
    cx = genome.complexity(distinct_kv)
    timings['static'] = time.perf_counter() - t0
    if reason is not Reason.OK:
        return done(reason, msg)

    t1 = time.perf_counter()
    try:
        if program is None:
            program = genome.compile(distinct_kv)
    except Exception as e:  # noqa: BLE001 - any failure is a rejection reason
        timings['compile'] = time.perf_counter() - t1
        return done(Reason.COMPILE_ERROR, f'{type(e).__name__}: {e}')
    timings['compile'] = time.perf_counter() - t1

    t2 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    m = tokens + 4 if distinct_kv else tokens
    q = torch.randn(batch, heads, tokens, head_dim, generator=gen, requires_grad=True)
    k = torch.randn(batch, heads, m, head_dim, generator=gen, requires_grad=True)
    v = torch.randn(batch, heads, m, head_dim, generator=gen, requires_grad=True)
    try:
        result = _run_checks(genome, program, q, k, v, gen, grad_tol, batch_rtol, batch_atol)
    except Exception as e:  # noqa: BLE001
        result = (Reason.RUNTIME_ERROR, f'{type(e).__name__}: {e}')
    timings['run'] = time.perf_counter() - t2
    if genome.uses_batch_global:
        skipped = ('batch_independence',)
    return done(*result)


def _run_checks(genome: Genome, program, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                gen: torch.Generator, grad_tol: float, rtol: float, atol: float) -> Tuple[Reason, str]:
    out = program(q, k, v)
    if tuple(out.shape) != tuple(q.shape):
        return Reason.WRONG_SHAPE, f'output shape {tuple(out.shape)} != {tuple(q.shape)}'
    if not torch.isfinite(out).all():
        bad = (~torch.isfinite(out)).float().mean().item()
        return Reason.NONFINITE_OUTPUT, f'{bad:.0%} of the output is NaN/inf'
    if not out.requires_grad:
        return Reason.IGNORES_INPUT, 'output does not depend on q, k or v (no gradient)'

    r = torch.randn(out.shape, generator=gen)
    grads = torch.autograd.grad((out * r).sum(), (q, k, v), allow_unused=True, retain_graph=True)
    for name, g in zip('qkv', grads):
        if g is not None and not torch.isfinite(g).all():
            return Reason.NONFINITE_GRAD, f'gradient w.r.t. {name} is not finite'
    for name, g in zip('qkv', grads):
        if not _grad_nonzero(g, grad_tol):
            return Reason.IGNORES_INPUT, f'gradient w.r.t. {name} is zero: the output ignores {name}'

    # token mixing: does output token 0 depend on other tokens of q, k or v?
    g0 = torch.autograd.grad((out[:, :, 0] * r[:, :, 0]).sum(), (q, k, v), allow_unused=True)
    if not any(_grad_nonzero(g[:, :, 1:] if g is not None else None, grad_tol) for g in g0):
        return Reason.NO_TOKEN_MIXING, 'output token 0 depends only on input token 0'

    if not genome.uses_batch_global:
        with torch.no_grad():
            alone = program(q[:1], k[:1], v[:1])
            together = out[:1].detach()
            if not torch.allclose(alone, together, rtol=rtol, atol=atol):
                err = (alone - together).abs().max().item()
                return Reason.BATCH_DEPENDENT, f'sample 0 alone differs from batched (max |diff| {err:.3g})'
    return Reason.OK, ''
