"""SepViT's depthwise separable self-attention -- Li et al., "SepViT: Separable Vision Transformer",
2022 (a method of the compact-ViT survey).

The grid is cut into ``window_size x window_size`` windows (the window count follows from the input:
``ceil(H / ws) * ceil(W / ws)``; the grid is padded with tokens that are never attended to):

1. **Depthwise self-attention (DSA)**: each window, with one learnable *window token* prepended,
   runs softmax self-attention over its ``1 + ws^2`` tokens. The window token's output summarises
   the window. (Here the window token lives in the per-head query/key/value space: three learnable
   ``(heads, d)`` vectors, which is what a learnable input token looks like after the module's
   linear projections.)
2. **Pointwise self-attention (PSA)**: the window tokens, after LayerNorm and GELU, give the
   queries and keys (one linear map ``d -> 2d`` shared by the heads) of a softmax attention *across
   windows*; its ``n_win x n_win`` map mixes the windows' DSA outputs, token position by token
   position: ``out_i = sum_j A_ij DSA_j`` (positions that are padding in window ``j`` add zero).

Cost ``O(N ws^2 d)`` for DSA and ``O(n_win^2 ws^2 d) = O(N n_win d)`` for PSA. With a fixed window
size the window count grows with ``N``, so the PSA term is ``O(N^2 d / ws^2)``: quadratic with a
``1 / ws^2`` factor (49x smaller than global attention at ws = 7), not linear; the flag ``linear``
is ``False``. The largest tensors are the window logits ``(B, heads, n_win, 1 + ws^2, 1 + ws^2)``
and the window map ``(B, heads, n_win, n_win)``; no ``N x N`` map. Prefix tokens (a cls token) are
not in any window: they attend to every token with plain softmax attention and are not attended
to by the grid tokens. Keys and values must be at the query resolution (``full_kv``); Swin stages
run this kernel globally (it makes its own windows).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import HW, AttentionKernel, TokenMask, acc_dtype, masked_softmax, register_attention


@register_attention('sepvit')
class SepViTAttention(AttentionKernel):
    """SepViT DSA + PSA (see the module docstring). ``v_branch`` is accepted and ignored.

    Args:
        window_size: side of the windows (7 in the paper).
    """

    linear = False
    full_kv = True
    own_windows = True
    #: token masks (DynamicViT): a dropped token is no key of its window, adds nothing to the
    #: pointwise mixing and no key of the prefix tokens; the windows are fixed by the grid, so
    #: hard-pruned tokens are put back on it as zeros with weight 0 (exact, but saves no work here)
    supports_token_mask = True

    def __init__(self, head_dim: int, num_heads: int, num_prefix_tokens: int = 0,
                 v_branch: bool = True, attn_drop: float = 0.0, window_size: int = 7) -> None:
        super().__init__(head_dim, num_heads, num_prefix_tokens, v_branch, attn_drop)
        if window_size < 1:
            raise ValueError(f'window_size must be >= 1, got {window_size}')
        self.window_size = window_size
        self.window_token = nn.Parameter(torch.zeros(3, num_heads, head_dim))
        nn.init.trunc_normal_(self.window_token, std=0.02)
        self.psa_norm = nn.LayerNorm(head_dim)
        self.psa_qk = nn.Linear(head_dim, 2 * head_dim)

    def _padded(self, hw: HW) -> HW:
        """The grid padded up to whole windows."""
        ws = self.window_size
        return -(-hw[0] // ws) * ws, -(-hw[1] // ws) * ws

    def _windows(self, x: torch.Tensor, hw: HW, padded: HW) -> torch.Tensor:
        """``(B, h, H*W, d)`` grid tokens -> ``(B, h, n_win, ws*ws, d)`` (zero-padded to ``padded``)."""
        B, h, _, d = x.shape
        (H, W), (Hp, Wp) = hw, padded
        ws = self.window_size
        g = x.reshape(B, h, H, W, d)
        if (Hp, Wp) != (H, W):
            g = F.pad(g, (0, 0, 0, Wp - W, 0, Hp - H))
        g = g.reshape(B, h, Hp // ws, ws, Wp // ws, ws, d).permute(0, 1, 2, 4, 3, 5, 6)
        return g.reshape(B, h, (Hp // ws) * (Wp // ws), ws * ws, d)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: Optional[HW] = None,
                attn_bias: Optional[torch.Tensor] = None, kv_hw: Optional[HW] = None,
                mask: Optional[TokenMask] = None) -> torch.Tensor:
        self._check_bias(attn_bias)
        if hw is None:
            raise ValueError('SepViT attention needs the token grid hw=(H, W)')
        if mask is not None:
            return self._on_full_layout(lambda *a: self._attend(*a, hw), q, k, v, hw, mask)
        return self._attend(q, k, v, None, hw)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                weight: Optional[torch.Tensor], hw: HW) -> torch.Tensor:
        """DSA + PSA; ``weight`` ``(B, p + H*W)``: token weights (``None``: all 1)."""
        B, h, N, d = q.shape
        p = self.num_prefix_tokens
        H, W = hw
        if k.shape[-2] != N or v.shape[-2] != N or N - p != H * W:
            raise ValueError(f'SepViT attention needs keys/values at the query resolution and '
                             f'{p} prefix + {H}x{W} grid tokens; got N={N}, M={k.shape[-2]}')
        dt = acc_dtype(q.dtype)
        qf, kf, vf = q.to(dt), k.to(dt), v.to(dt)
        ws = self.window_size
        scale = d ** -0.5
        # DSA: window token + the window's tokens, softmax attention inside each window
        Hp, Wp = self._padded(hw)
        wq, wk, wv = (self._windows(t[:, :, p:], hw, (Hp, Wp)) for t in (qf, kf, vf))  # (B, h, nW, L, d)
        nW, L = wq.shape[2], ws * ws
        tok = self.window_token.to(dt)[:, None, :, None, None, :].expand(3, B, h, nW, 1, d)
        wq, wk, wv = (torch.cat([tok[i], t], dim=3) for i, t in enumerate((wq, wk, wv)))
        logits = torch.einsum('bhwid,bhwjd->bhwij', wq, wk) * scale
        valid = None
        if (Hp, Wp) != (H, W):  # padded positions are never keys
            valid = torch.zeros(Hp, Wp, dtype=torch.bool, device=q.device)
            valid[:H, :W] = True
            valid = valid.reshape(Hp // ws, ws, Wp // ws, ws).permute(0, 2, 1, 3).reshape(nW, L)
            valid = torch.cat([valid.new_ones(nW, 1), valid], dim=1)
            logits = logits.masked_fill(~valid[:, None, :], float('-inf'))
        kw = None
        if weight is not None:   # token weights of the windows' keys (the window token: 1)
            kw = self._windows(weight[:, None, p:, None].to(dt), hw, (Hp, Wp))[:, :, :, :, 0]
            kw = torch.cat([kw.new_ones(B, 1, nW, 1), kw], dim=-1)                # (B, 1, nW, 1+L)
            attn = masked_softmax(logits, kw.unsqueeze(-2))
        else:
            attn = logits.softmax(dim=-1)
        if self.training and self.attn_drop > 0:
            attn = F.dropout(attn, self.attn_drop)
        dsa = torch.einsum('bhwij,bhwjd->bhwid', attn, wv)                     # (B, h, nW, 1+L, d)
        pix = dsa[:, :, :, 1:]
        if valid is not None:  # padded positions contribute nothing to the mixing (zero padding)
            pix = pix * valid[:, 1:, None].to(dt)
        if kw is not None:     # nor do dropped tokens
            pix = pix * kw[..., 1:, None]
        # PSA: window tokens -> queries/keys of an attention across windows, applied to DSA outputs
        z = F.gelu(self.psa_norm(dsa[:, :, :, 0].to(self.psa_norm.weight.dtype)))
        pq, pk = self.psa_qk(z).to(dt).chunk(2, dim=-1)                          # (B, h, nW, d)
        amap = (torch.einsum('bhid,bhjd->bhij', pq, pk) * scale).softmax(dim=-1)
        out = torch.einsum('bhij,bhjld->bhild', amap, pix)                        # (B, h, nW, L, d)
        out = out.reshape(B, h, Hp // ws, Wp // ws, ws, ws, d).permute(0, 1, 2, 4, 3, 5, 6)
        out = out.reshape(B, h, Hp, Wp, d)[:, :, :H, :W].reshape(B, h, H * W, d)
        if p:
            if weight is None:
                pre = F.scaled_dot_product_attention(qf[:, :, :p], kf, vf)
            else:
                pl = torch.einsum('bhid,bhjd->bhij', qf[:, :, :p], kf) * scale
                pre = masked_softmax(pl, weight[:, None, None, :].to(dt)) @ vf
            out = torch.cat([pre, out], dim=2)
        return out.to(q.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', window_size={self.window_size}'
