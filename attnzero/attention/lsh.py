"""Reformer LSH attention -- Kitaev, Kaiser and Levskaya, "Reformer: The Efficient Transformer",
ICLR 2020 (the first method of the compact-ViT survey; a sub-quadratic softmax baseline).

Shared-QK attention restricted to hash buckets:

1. **Shared QK.** The keys are the queries, L2-normalised: ``k_n = q_n / ||q_n||`` (the module's
   own key projection is not used by this kernel). Logits are ``q_n . k_m / sqrt(d)``.
2. **Angular LSH**, ``n_hashes`` independent rounds: ``h(x) = argmax([x R; -x R])`` for a random
   rotation ``R``. The bucket count grows with the sequence, ``n_buckets ~ N / bucket_size``, and
   is *factorised* as Reformer allows (``n_buckets = b1 * b2``, two rotations with ``b1 / 2`` and
   ``b2 / 2`` columns), so hashing costs ``O(N sqrt(N / bucket_size) d)`` instead of
   ``O(N^2 / bucket_size * d)``. The rotations are a fixed buffer drawn at construction (seeded:
   the same model always hashes the same way; they are saved with the state dict).
3. **Sort and chunk.** Per round the tokens are sorted by (bucket, position) and cut into chunks of
   ``bucket_size``; each chunk attends to itself and to the previous chunk (wrapping around), only
   to keys of the *same bucket*. A token does not attend to itself unless it has no other key
   (its self logit is replaced by ``-1e5``, as in Reformer). The sequence is padded to a multiple
   of ``bucket_size`` with tokens that sort last and are never attended to.
4. **Rounds combined** by their normalisers: ``out = sum_r softmax_r(lse_r) o_r``. (Reformer's
   optional correction for a key found in several rounds is not applied.)

Cost ``O(n_hashes (N log N + N bucket_size d))`` plus hashing: no ``N x N`` tensor; the largest is
``(B, heads, n_hashes, N, 2 * bucket_size)``. Keys and values must have as many tokens as the
queries (``full_kv``: PVT stages built with ``attn='lsh'`` use no spatial reduction). Everything is tensor ops on shapes: no host synchronisation, and
``torch.export`` traces it.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .base import HW, AttentionKernel, TokenMask, acc_dtype, register_attention

SELF_LOGIT = -1e5     # a token attends to itself only when nothing else is in reach
MASKED_LOGIT = -1e9   # other buckets and padding: never (exp underflows to 0)


def lsh_buckets(n: int, bucket_size: int) -> Tuple[int, int]:
    """The factorised bucket counts ``(b1, b2)`` for ``n`` tokens: both even, about equal, with
    ``b1 * b2 >= n / bucket_size`` (so that a bucket holds about ``bucket_size`` tokens)."""
    want = max(1, -(-n // bucket_size))
    side = math.isqrt(want - 1) + 1                 # ceil(sqrt(want))
    b1 = 2 * (-(-side // 2))
    b2 = 2 * (-(-(-(-want // b1)) // 2))
    return b1, b2


@register_attention('lsh')
class LSHAttention(AttentionKernel):
    """Reformer LSH attention (see the module docstring). ``v_branch`` is accepted and ignored.

    Args:
        n_hashes: hashing rounds.
        bucket_size: chunk length (and the average bucket size the bucket count aims at).
        max_half_buckets: columns of each stored rotation, the most ``b / 2`` of a factor (bounds
            the sequence length at ``(2 * max_half_buckets) ** 2 * bucket_size`` tokens).
        seed: seed of the rotations.
    """

    linear = False  # O(N log N) (sorting) and sub-quadratic hashing; not linear
    full_kv = True  # shared QK: PVT stages run it without spatial reduction
    #: token masks (DynamicViT): a dropped token is hashed to the padding bucket (sorted after the
    #: kept ones, never a key of a kept token), so the kept tokens' buckets and chunks do not depend
    #: on it; the kept keys' weights scale their exponentials (gradients to the decisions). The
    #: bucket count follows the full layout, so hard-pruned tokens are put back on it as zeros with
    #: weight 0 (exact, but saves no work here). A dropped token's own output row is zero.
    supports_token_mask = True

    def __init__(self, head_dim: int, num_heads: int, num_prefix_tokens: int = 0,
                 v_branch: bool = True, attn_drop: float = 0.0, n_hashes: int = 2,
                 bucket_size: int = 32, max_half_buckets: int = 64, seed: int = 0) -> None:
        super().__init__(head_dim, num_heads, num_prefix_tokens, v_branch, attn_drop)
        if n_hashes < 1 or bucket_size < 1 or max_half_buckets < 1:
            raise ValueError(f'n_hashes, bucket_size and max_half_buckets must be >= 1, got '
                             f'{n_hashes}, {bucket_size}, {max_half_buckets}')
        self.n_hashes, self.bucket_size, self.max_half_buckets = n_hashes, bucket_size, max_half_buckets
        g = torch.Generator().manual_seed(seed)
        # two factors x rounds x d x columns; heads share them (the rotation is data-independent)
        self.register_buffer('rotations', torch.randn(2, n_hashes, head_dim, max_half_buckets, generator=g))

    def buckets(self, n: int) -> Tuple[int, int]:
        """The two bucket-count factors for ``n`` tokens (:func:`lsh_buckets`), checked against
        the stored rotations."""
        b1, b2 = lsh_buckets(n, self.bucket_size)
        if max(b1, b2) // 2 > self.max_half_buckets:
            raise ValueError(f'{n} tokens need {b1 // 2} x {b2 // 2} rotation columns; this LSH kernel '
                             f'stores {self.max_half_buckets} (raise max_half_buckets or bucket_size)')
        return b1, b2

    def hash(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """Bucket of every token per round: ``(B, h, n_hashes, N)`` integers in ``[0, b1 * b2)``."""
        return self._hash(x, *self.buckets(n))

    def _hash(self, x: torch.Tensor, b1: int, b2: int) -> torch.Tensor:
        r = self.rotations.to(x.dtype)
        parts = []
        for f, b in ((0, b1), (1, b2)):
            rot = torch.einsum('bhnd,rdk->bhrnk', x, r[f, :, :, : b // 2])
            parts.append(torch.cat([rot, -rot], dim=-1).argmax(dim=-1))
        return parts[0] * b2 + parts[1]

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: Optional[HW] = None,
                attn_bias: Optional[torch.Tensor] = None, kv_hw: Optional[HW] = None,
                mask: Optional[TokenMask] = None) -> torch.Tensor:
        self._check_bias(attn_bias)
        if mask is not None:
            if hw is None:
                raise ValueError('LSH attention needs the token grid hw=(H, W) with a token mask')
            return self._on_full_layout(self._attend, q, k, v, hw, mask)
        return self._attend(q, k, v, None)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                weight: Optional[torch.Tensor]) -> torch.Tensor:
        """The LSH attention; ``weight`` ``(B, N)``: token weights (``None``: all 1)."""
        B, h, N, d = q.shape
        if k.shape[-2] != N or v.shape[-2] != N:
            raise ValueError(f'LSH attention shares queries and keys: it needs as many key/value tokens '
                             f'as queries, got {k.shape[-2]} for {N} (no spatial reduction)')
        dt = acc_dtype(q.dtype)
        qf, vf = q.to(dt), v.to(dt)
        H, c = self.n_hashes, self.bucket_size
        nc = -(-N // c)
        Np = nc * c
        kn = F.normalize(qf, dim=-1)
        b1, b2 = self.buckets(N)
        buckets = self._hash(kn, b1, b2)                             # (B, h, H, N)
        if weight is not None:   # dropped tokens: the padding bucket
            buckets = buckets.masked_fill((weight <= 0)[:, None, None, :], b1 * b2)
        pos = torch.arange(Np, device=q.device)
        if Np > N:  # padding tokens: a bucket of their own after every real one (sorted last)
            pad = (0, 0, 0, Np - N)
            qf, vf, kn = F.pad(qf, pad), F.pad(vf, pad), F.pad(kn, pad)
            buckets = F.pad(buckets, (0, Np - N), value=b1 * b2)
        order = (buckets * Np + pos).argsort(dim=-1)                 # (B, h, H, Np)
        idx = order.unsqueeze(-1).expand(B, h, H, Np, d)

        def sort(x: torch.Tensor) -> torch.Tensor:                   # (B, h, Np, d) -> sorted per round
            return x.unsqueeze(2).expand(B, h, H, Np, d).gather(3, idx).view(B, h, H, nc, c, d)

        sq, sk, sv = sort(qf), sort(kn), sort(vf)
        sb = buckets.gather(3, order).view(B, h, H, nc, c)
        sp = order.view(B, h, H, nc, c)
        if nc > 1:  # each chunk also sees the previous one (chunk 0 the last)
            def back(x: torch.Tensor) -> torch.Tensor:
                return torch.cat([x, x.roll(1, dims=3)], dim=4)
            sk, sv, kb, kp = back(sk), back(sv), back(sb), back(sp)
        else:
            kb, kp = sb, sp
        logits = torch.einsum('bhrcid,bhrcjd->bhrcij', sq, sk) * d ** -0.5
        other = (sb.unsqueeze(-1) != kb.unsqueeze(-2)) | (kp.unsqueeze(-2) >= N)
        logits = logits.masked_fill(other, MASKED_LOGIT)
        logits = logits.masked_fill(sp.unsqueeze(-1) == kp.unsqueeze(-2), SELF_LOGIT)
        if weight is None:
            lse = torch.logsumexp(logits, dim=-1, keepdim=True)       # (B, h, H, nc, c, 1)
            probs = torch.exp(logits - lse)
        else:                    # the keys' weights scale their exponentials
            wk = F.pad(weight.to(dt), (0, Np - N)).view(B, 1, 1, Np).expand(B, h, H, Np).gather(3, order)
            wk = wk.view(B, h, H, nc, c)
            wk = torch.cat([wk, wk.roll(1, dims=3)], dim=4) if nc > 1 else wk
            m = logits.amax(dim=-1, keepdim=True).detach()
            e = torch.exp(logits - m) * wk.unsqueeze(-2)
            s = e.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(dt).tiny)   # 0: a dropped row
            lse, probs = m + torch.log(s), e / s
        if self.training and self.attn_drop > 0:
            probs = F.dropout(probs, self.attn_drop)
        so = torch.einsum('bhrcij,bhrcjd->bhrcid', probs, sv).reshape(B, h, H, Np, d)
        inv = order.argsort(dim=-1)
        o = so.gather(3, inv.unsqueeze(-1).expand(B, h, H, Np, d))[..., :N, :]
        w = lse.reshape(B, h, H, Np).gather(3, inv)[..., :N]
        w = torch.softmax(w, dim=2).unsqueeze(-1)                    # rounds weighted by normaliser
        return (o * w).sum(dim=2).to(q.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', n_hashes={self.n_hashes}, bucket_size={self.bucket_size}'
