"""Functional-equivalence fingerprint (the FEC of AutoML-Zero).

Two genomes that compute the same function get the same fingerprint, so the search can skip
re-training duplicates written differently (``[relu, relu]`` vs ``[relu]``, ``scale`` before a
scale-invariant normalisation, ``einsum2`` + ``transpose`` vs ``einsum1``, ...).

The fingerprint hashes the outputs on fixed, seeded probe inputs computed in float64 (so that
differently ordered but algebraically equal computations agree to ~1e-13), quantised to
``bits`` significant bits of mantissa; values below ``zero_tol`` times the output's max-abs count as
zero, NaN and inf are kept as symbols. The probe sizes are pairwise different so that no shape
coincidence lets an invalid program run.

:func:`equivalent` is the finer test used to verify the simplifier's rewrites: two genomes run by
the reference evaluator on the probes of two seeds, compared by the same quantisation
(:func:`quantise`) or within a tolerance.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from .genome import Genome

__all__ = ['fingerprint', 'probe_inputs', 'same_function', 'equivalent', 'quantise']

_PROBE_SHAPE = (2, 2, 11, 6)


@lru_cache(maxsize=4)
def probe_inputs(seed: int = 20240901, shape: Tuple[int, int, int, int] = _PROBE_SHAPE
                 ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fixed probe ``(q, k, v)`` in float64 (cached; never modify them)."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = torch.randn((3,) + tuple(shape), generator=gen, dtype=torch.float64).unbind(0)
    return q, k, v


def _probe_qkv(seed: int, distinct_kv: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The probe ``(q, k, v)``; with ``distinct_kv`` keys/values get 4 more tokens (own seed)."""
    q, k, v = probe_inputs(seed)
    if distinct_kv:
        gen = torch.Generator().manual_seed(seed + 1)
        k, v = torch.randn((2,) + q.shape[:2] + (q.shape[2] + 4, q.shape[3]), generator=gen,
                           dtype=torch.float64).unbind(0)
    return q, k, v


def quantise(x: np.ndarray, bits: int = 20, zero_tol: float = 1e-9) -> bytes:
    """The bytes hashed by :func:`fingerprint`: every value as ``(mantissa rounded to bits bits,
    exponent, NaN/+inf/-inf code)``, values below ``zero_tol`` times the max-abs finite value as 0."""
    x = np.asarray(x, dtype=np.float64).ravel()
    finite = np.isfinite(x)
    scale = np.abs(x[finite]).max() if finite.any() else 0.0
    y = np.where(finite & (np.abs(x) > zero_tol * scale), x, 0.0)
    mant, expo = np.frexp(y)
    mant = np.round(mant * (1 << bits)).astype(np.int64)
    # rounding can carry the mantissa to 2^bits: renormalise so equal values map to equal pairs
    carry = np.abs(mant) == (1 << bits)
    mant = np.where(carry, mant // 2, mant)
    expo = np.where(carry, expo + 1, expo)
    expo = np.where(mant == 0, 0, expo)
    code = np.where(np.isnan(x), 1, np.where(np.isposinf(x), 2, np.where(np.isneginf(x), 3, 0)))
    return np.stack([mant, expo.astype(np.int64), code.astype(np.int64)]).tobytes()


def fingerprint(genome: Genome, *, bits: int = 20, zero_tol: float = 1e-9, seed: int = 20240901,
                distinct_kv: bool = False) -> str:
    """Hex fingerprint (16 digits) of the function ``genome`` computes.

    A genome that does not compile or raises gets ``'invalid-<genome.hash>'`` (unique per genome).
    """
    try:
        program = genome.compile(distinct_kv)
        q, k, v = _probe_qkv(seed, distinct_kv)
        with torch.no_grad():
            out = program(q, k, v)
    except Exception:  # noqa: BLE001 - a program that cannot run has no function to compare
        return f'invalid-{genome.hash}'
    data = quantise(out.numpy(), bits, zero_tol)
    return hashlib.sha256(data).hexdigest()[:16]


def same_function(a: Genome, b: Genome, **kw) -> bool:
    """True if ``a`` and ``b`` have equal fingerprints."""
    fa: Optional[str] = fingerprint(a, **kw)
    return fa == fingerprint(b, **kw) and not fa.startswith('invalid-')


def equivalent(a: Genome, b: Genome, *, distinct_kv: bool = False, rtol: float = 1e-9,
               atol: float = 1e-12, seeds: Sequence[int] = (20240901, 7)) -> bool:
    """True if ``a`` and ``b`` compute the same function on the functional-equivalence probes.

    Both are run with the *reference* evaluator (``compile(fast=False)``) in float64 on the probe
    inputs of :func:`probe_inputs` (two seeds); equal quantised hashes (the FEC
    fingerprint's quantisation), or values equal within ``rtol``/``atol`` with NaN/inf in the same
    places, count as equal (the latter covers values straddling a quantisation boundary).
    """
    for seed in seeds:
        q, k, v = _probe_qkv(seed, distinct_kv)
        outs = []
        for g in (a, b):
            try:
                with torch.no_grad():
                    outs.append(g.compile(distinct_kv, fast=False)(q, k, v))
            except Exception:  # noqa: BLE001 - a program that cannot run equals nothing
                return False
        x, y = outs
        if x.shape != y.shape:
            return False
        if quantise(x.numpy()) == quantise(y.numpy()):
            continue
        scale = float(x[torch.isfinite(x)].abs().max()) if torch.isfinite(x).any() else 0.0
        if not torch.allclose(x, y, rtol=rtol, atol=atol + 1e-9 * scale, equal_nan=True):
            return False
        if not torch.equal(torch.isinf(x), torch.isinf(y)):
            return False
    return True
