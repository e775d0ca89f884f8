"""The one attention interface shared by every backbone.

Two levels, so that backbones with unusual token layouts (Swin windows, CSwin stripes) use the
same attention code as the plain ones:

* :class:`AttentionKernel` -- the token-mixing core. ``kernel(q, k, v, hw, attn_bias=None)`` takes
  per-head tensors of shape ``(B, heads, N, d)`` (keys/values may have ``M != N`` tokens) and
  returns ``(B, heads, N, d)``. ``hw`` is the ``(H, W)`` grid of the *spatial* query tokens (prefix
  tokens such as a cls token come first and are not part of the grid). A kernel may own parameters
  (learnable scales, a depthwise conv on V). When keys/values were spatially reduced, the grid of
  their spatial tokens may be passed as ``kv_hw`` (inferred from the token count if omitted).
* :class:`Attention` -- the module around a kernel: q/k/v projections, head split, kernel, head
  merge, output projection. ``Attention(x, hw) -> x`` on ``(B, N, C)`` tokens. Optional spatial
  reduction of keys/values (PVT v1/v2) lives here.

Kernels register by name in :data:`ATTENTIONS`; ``build_kernel('linear', ...)`` makes one.

Parameter naming of :class:`Attention` (so that published checkpoints map one to one):

* fused (default when ``sr_ratio == 1``): ``qkv`` = Linear(C, 3C) with output laid out as
  ``(3, heads, d)`` -- the DeiT / Swin / timm layout;
* separate (default when ``sr_ratio > 1``; force with ``qkv_fused=False``): ``q`` = Linear(C, C),
  ``kv`` = Linear(C, 2C) laid out as ``(2, heads, d)`` -- the PVT v1/v2 layout (PVT uses ``q``/``kv``
  in every stage, so PVT backbones pass ``qkv_fused=False``);
* spatial reduction (``sr_ratio > 1``): ``sr`` = Conv2d(C, C, sr_ratio, stride=sr_ratio),
  ``norm`` = LayerNorm(C) -- as in PVT;
* ``proj`` = Linear(C, C); the kernel's own parameters live under ``kernel.`` (e.g. ``kernel.dwc``).
Both layouts have the same parameter count (3C^2 + 3C with bias).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple, Type, Union

import torch
import torch.nn.functional as F
from torch import nn

HW = Tuple[int, int]

ATTENTIONS: Dict[str, Type['AttentionKernel']] = {}


def register_attention(name: str) -> Callable[[Type['AttentionKernel']], Type['AttentionKernel']]:
    """Class decorator: make a kernel selectable by ``name`` in configs."""

    def deco(cls: Type['AttentionKernel']) -> Type['AttentionKernel']:
        if name in ATTENTIONS and ATTENTIONS[name] is not cls:
            raise KeyError(f'attention {name!r} is already registered by {ATTENTIONS[name].__name__}')
        ATTENTIONS[name] = cls
        cls.name = name
        return cls

    return deco


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype in which normaliser sums are accumulated: float32 for half types, else unchanged."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def inplace_ok(*tensors: Optional[torch.Tensor]) -> bool:
    """True when autograd will not record the computation on ``tensors`` (grad mode off, or none of
    them requires grad), so a kernel may update its own intermediates in place. Inputs are never
    updated in place."""
    return not torch.is_grad_enabled() or not any(t is not None and t.requires_grad for t in tensors)


def add_branch(out: torch.Tensor, branch: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
    """``out + branch``, in place on ``out`` when that is safe: no autograd recording
    (:func:`inplace_ok`), same shape and dtype, and ``out`` shares no memory with ``inputs`` (a
    genome may return one of its inputs unchanged). Under ``torch.compile`` / ``torch.export``
    always out of place."""
    if torch.compiler.is_compiling():  # traced: out-of-place (the compiler plans the buffers)
        return out + branch
    if (inplace_ok(out, branch) and out.shape == branch.shape and out.dtype == branch.dtype
            and not any(out.untyped_storage().data_ptr() == t.untyped_storage().data_ptr() for t in inputs)):
        return out.add_(branch)
    return out + branch


def infer_kv_hw(hw: HW, m_spatial: int) -> HW:
    """Grid of ``m_spatial`` key/value tokens reduced from the query grid ``hw`` by a common
    integer stride (PVT's ``floor(H / r) x floor(W / r)``)."""
    H, W = hw
    if m_spatial == H * W:
        return (H, W)
    r0 = max(1, int(round(math.sqrt(H * W / max(m_spatial, 1)))))
    for r in sorted(range(1, max(H, W) + 1), key=lambda r: abs(r - r0)):
        if (H // r) * (W // r) == m_spatial:
            return (H // r, W // r)
    raise ValueError(f'cannot infer the key/value grid of {m_spatial} tokens from query grid {hw}; '
                     'pass kv_hw')


@dataclass
class TokenMask:
    """Which tokens take part in an attention call, for token reduction (DynamicViT).

    The full layout is ``num_prefix_tokens + H * W`` tokens. Two forms, which give the same result
    on the tokens present when ``weight`` is 0/1:

    * ``weight`` ``(B, n)`` in ``[0, 1]``: every token is present, each takes part as a key/value
      with this weight (training: DynamicViT's straight-through Gumbel decisions; 0 = dropped);
    * ``index`` ``(B, n)`` long: only ``n`` tokens are present, at these positions of the full
      layout (inference: hard-pruned tokens; prefix tokens first).

    A mask-aware kernel (``supports_token_mask``) weighs the rows of ``phi(K)`` and ``V`` (never an
    ``N x N`` matrix for a linear kernel); softmax weighs its exponentials. Spatial parts (the
    depthwise conv on V, agent pooling) run on the full grid with the missing tokens at zero and
    the present ones weighted (:meth:`scatter` / :meth:`gather`).
    """

    weight: Optional[torch.Tensor] = None
    index: Optional[torch.Tensor] = None

    def weigh(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of ``x`` ``(B, h, n, d)`` times their weight (unchanged without weights)."""
        if self.weight is None:
            return x
        return x * self.weight.to(x.dtype)[:, None, :, None]

    def scatter(self, x: torch.Tensor, n_full: int) -> torch.Tensor:
        """``(B, h, n, d)`` present tokens -> ``(B, h, n_full, d)`` weighted, zero where missing."""
        x = self.weigh(x)
        if self.index is None:
            return x
        B, h, _, d = x.shape
        idx = self.index[:, None, :, None].expand(B, h, -1, d)
        return x.new_zeros(B, h, n_full, d).scatter(2, idx, x)

    def dense_weight(self, n_full: int, dtype: torch.dtype) -> torch.Tensor:
        """The weights ``(B, n_full)`` of the full layout: ``weight``, or 1 at the present tokens
        and 0 elsewhere for the ``index`` form."""
        if self.index is None:
            return self.weight.to(dtype)
        B = self.index.shape[0]
        return torch.zeros(B, n_full, dtype=dtype, device=self.index.device).scatter(1, self.index, 1.0)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, h, n_full, d)`` -> the rows of the present tokens ``(B, h, n, d)``."""
        if self.index is None:
            return x
        B, h, _, d = x.shape
        return x.gather(2, self.index[:, None, :, None].expand(B, h, -1, d))


def masked_softmax(logits: torch.Tensor, weight: Optional[torch.Tensor]) -> torch.Tensor:
    """Softmax over the last (key) dim with key weights in ``[0, 1]``, ``(B, M)`` for
    ``(B, heads, N, M)`` logits or any shape that broadcasts to ``logits``:
    ``w_j e^{l_j} / sum_m w_m e^{l_m}`` (DynamicViT's attention masking). Exact for 0/1 weights
    (the max is taken over the kept keys; a dropped key's exponential is clamped before it is
    weighted, so it cannot overflow), with gradients to every weight. At least one key per row
    must have a positive weight (the cls token is never dropped)."""
    if weight is None:
        return logits.softmax(dim=-1)
    w = weight.to(logits.dtype)
    w = w[:, None, None, :] if w.dim() == 2 else w
    m = logits.masked_fill(w <= 0, float('-inf')).amax(dim=-1, keepdim=True).detach()
    e = torch.exp((logits - m).clamp_max(0)) * w
    return e / e.sum(dim=-1, keepdim=True)


class VBranch(nn.Conv2d):
    """Depthwise conv on V on the spatial grid, added to the kernel output ("rank restoration" DWC
    of FLatten, the local branch of Agent Attention and of AttnZero's reference module).

    A :class:`torch.nn.Conv2d` (parameters ``weight``/``bias``) with a token-layout ``forward``:
    ``v`` is ``(B, heads, M, d)`` with ``num_prefix_tokens`` leading non-spatial tokens on a
    ``kv_hw`` grid; the result is ``(B, heads, N, d)`` on the query layout with zero prefix rows.
    If the key/value grid differs from the query grid (spatial reduction), V is resized to the query
    grid with bilinear interpolation before the conv.

    Args:
        shared_across_heads: one ``d``-channel depthwise filter bank applied to every head (FLatten's
            layout) instead of one filter per channel of ``C = heads * d``.
    """

    def __init__(self, head_dim: int, num_heads: int, kernel_size: int = 3,
                 shared_across_heads: bool = False, num_prefix_tokens: int = 0) -> None:
        ch = head_dim if shared_across_heads else head_dim * num_heads
        super().__init__(ch, ch, kernel_size, padding=kernel_size // 2, groups=ch)
        self.head_dim, self.num_heads = head_dim, num_heads
        self.shared_across_heads = shared_across_heads
        self.num_prefix_tokens = num_prefix_tokens

    def forward(self, v: torch.Tensor, hw: HW, n_out: int,  # type: ignore[override]
                kv_hw: Optional[HW] = None) -> torch.Tensor:
        B, h, M, d = v.shape
        p = self.num_prefix_tokens
        if hw is None:
            raise ValueError('the depthwise-conv branch on V needs hw=(H, W)')
        H, W = hw
        if kv_hw is None or kv_hw[0] * kv_hw[1] != M - p:
            kv_hw = infer_kv_hw(hw, M - p)
        Hk, Wk = kv_hw
        # The conv runs on channels-last images, the token layout itself: with a filter bank shared
        # across heads, (B, h, Mk, d) *is* a channels-last (B*h, d, Hk, Wk) image (no copy); with one
        # filter per channel of C, one copy brings the heads next to d. Depthwise convs are fastest
        # channels-last on CPU, and the result maps back onto tokens without a transposed copy.
        vs = v[:, :, p:]
        if self.shared_across_heads:
            g = vs.reshape(B * h, Hk, Wk, d).permute(0, 3, 1, 2)
        else:
            g = vs.permute(0, 2, 1, 3).reshape(B, Hk, Wk, h * d).permute(0, 3, 1, 2)
        if (Hk, Wk) != (H, W):
            g = F.interpolate(g, size=(H, W), mode='bilinear', align_corners=False)
        g = self._conv_forward(g, self.weight, self.bias).permute(0, 2, 3, 1)  # (., H, W, channels)
        if self.shared_across_heads:
            out = g.reshape(B, h, H * W, d)
        else:
            out = g.reshape(B, H * W, h, d).permute(0, 2, 1, 3)
        if n_out != H * W:
            out = F.pad(out, (0, 0, n_out - H * W, 0))
        return out


class AttentionKernel(nn.Module):
    """Token-mixing core on per-head tensors ``(B, heads, N, d)``.

    Args:
        head_dim: channels per head ``d``.
        num_heads: number of heads.
        num_prefix_tokens: tokens at the start of the sequence that are not on the ``hw`` grid
            (e.g. DeiT's cls token); spatial operations (depthwise convs, pooling) skip them. The
            key/value sequence has the same number of prefix tokens.
        v_branch: whether the kernel adds its own local branch on V (depthwise conv) when its
            formulation has one. Backbones with their own positional branch (CSwin's LePE) pass
            ``False``.
        attn_drop: dropout on the attention matrix (used only by kernels that form one).

    ``forward(q, k, v, hw=None, attn_bias=None, kv_hw=None)``: ``q`` is ``(B, heads, N, d)``,
    ``k``/``v`` are ``(B, heads, M, d)``; returns ``(B, heads, N, d)`` in ``q``'s dtype. ``hw`` is
    needed by kernels with spatial branches; ``attn_bias`` (additive, broadcastable to
    ``(B, heads, N, M)``) only by kernels with ``supports_attn_bias``.
    """

    name: str = ''
    #: True if the kernel can take an additive attention bias (Swin relative position bias).
    supports_attn_bias: bool = False
    #: True if cost is linear in the number of tokens.
    linear: bool = True
    #: True if keys/values must have the queries' tokens (no spatial reduction; e.g. shared QK).
    full_kv: bool = False
    #: True if the kernel cuts the grid into windows itself (Swin stages give it the whole grid).
    own_windows: bool = False
    #: True if ``forward`` takes ``mask=`` (:class:`TokenMask`; DynamicViT token pruning).
    supports_token_mask: bool = False

    def __init__(self, head_dim: int, num_heads: int, num_prefix_tokens: int = 0,
                 v_branch: bool = True, attn_drop: float = 0.0) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.num_heads = num_heads
        self.num_prefix_tokens = num_prefix_tokens
        self.v_branch = v_branch
        self.attn_drop = attn_drop

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: Optional[HW] = None,
                attn_bias: Optional[torch.Tensor] = None,
                kv_hw: Optional[HW] = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _spatial(self, branch: Callable[..., torch.Tensor], x: torch.Tensor, hw: Optional[HW],
                 n_out: int, kv_hw: Optional[HW], mask: Optional[TokenMask]) -> torch.Tensor:
        """``branch(x, hw, n_out, kv_hw)`` (the V branch's signature) run on the full grid when
        a mask is given: ``x`` scattered (weighted, zero where missing), the result gathered back
        to the present tokens."""
        if mask is None:
            return branch(x, hw, n_out, kv_hw)
        if hw is None:
            raise ValueError(f'attention {self.name!r} needs hw=(H, W) for its spatial branch')
        n_full = self.num_prefix_tokens + hw[0] * hw[1]
        return mask.gather(branch(mask.scatter(x, n_full), hw, n_full, hw))

    def _on_full_layout(self, fn: Callable[..., torch.Tensor], q: torch.Tensor, k: torch.Tensor,
                        v: torch.Tensor, hw: HW, mask: TokenMask) -> torch.Tensor:
        """``fn(q, k, v, weight)`` on the full ``p + H*W`` layout with dense token weights ``(B,
        p + H*W)``: hard-pruned tokens (``mask.index``) are scattered back as zeros with weight 0
        and the result is gathered at the present tokens. For kernels whose structure is fixed by
        the full grid (windows, hash buckets): pruning then gives exactly the masked result but
        saves none of their work."""
        n_full = self.num_prefix_tokens + hw[0] * hw[1]
        weight = mask.dense_weight(n_full, acc_dtype(q.dtype))
        if mask.index is None:
            return fn(q, k, v, weight)
        full = [TokenMask(index=mask.index).scatter(t, n_full) for t in (q, k, v)]
        return mask.gather(fn(*full, weight))

    def _check_bias(self, attn_bias: Optional[torch.Tensor]) -> None:
        if attn_bias is not None and not self.supports_attn_bias:
            raise ValueError(f'attention {self.name!r} does not take an attn_bias')

    def extra_repr(self) -> str:
        return (f'head_dim={self.head_dim}, num_heads={self.num_heads}, '
                f'num_prefix_tokens={self.num_prefix_tokens}, linear={self.linear}')


def _accepts(cls: type, arg: str) -> bool:
    return arg in inspect.signature(cls.__init__).parameters


def build_kernel(name: str, head_dim: int, num_heads: int, **kwargs) -> AttentionKernel:
    """Build the kernel registered as ``name``; unknown names list the known ones.

    The built-in kernels are registered by :mod:`attnzero.attention.zoo`, which the package
    ``__init__`` imports (so they are in :data:`ATTENTIONS` whenever this module is importable).
    """
    if name not in ATTENTIONS:
        raise KeyError(f'unknown attention {name!r}; known: {sorted(ATTENTIONS)}')
    return ATTENTIONS[name](head_dim=head_dim, num_heads=num_heads, **kwargs)


class Attention(nn.Module):
    """Multi-head attention module on ``(B, N, C)`` tokens around a named kernel.

    ``forward(x, hw, attn_bias=None) -> (B, N, C)``: ``x`` holds ``num_prefix_tokens`` prefix tokens
    followed by ``H * W`` spatial tokens in row-major order; ``hw = (H, W)``.

    Args:
        dim: channels C.
        num_heads: heads (``C % num_heads == 0``).
        attn: kernel name in :data:`ATTENTIONS` (``softmax``, ``linear``, ``focused``,
            ``relu_linear``, ``hydra``, ``agent``, ``attnzero``).
        qkv_bias: bias of the q/k/v projections.
        attn_drop: attention dropout (only kernels forming an attention matrix use it).
        proj_drop: dropout after the output projection.
        num_prefix_tokens: non-spatial leading tokens (cls/dist tokens).
        sr_ratio: PVT spatial reduction of keys/values (Conv2d(C, C, r, stride=r) + LayerNorm on the
            grid; prefix tokens are not reduced but are layer-normed with the reduced tokens).
        v_branch: forwarded to the kernel (its depthwise conv on V, if it has one).
        genome: AttnZero genome (canonical text, ``Genome`` or original-format dict); forwarded only
            to kernels that take one (so a per-stage mix of kernels can share one ``genome``).
        qkv_fused: ``True`` -> one ``qkv`` Linear; ``False`` -> ``q`` and ``kv``; default ``None`` =
            fused iff ``sr_ratio == 1``.
        head_dim: q/k/v channels per head; default ``None`` = ``dim // num_heads``. Otherwise the
            kernel works at ``num_heads * head_dim`` channels, projected from and back to ``dim``
            (AutoFormer's layout, where the number of heads sets the attention width).
        **kernel_kwargs: passed to the kernel constructor (e.g. ``scale``, ``agent_num``).
    """

    def __init__(self, dim: int, num_heads: int = 8, attn: str = 'softmax', qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, num_prefix_tokens: int = 0,
                 sr_ratio: int = 1, v_branch: bool = True,
                 genome: Union[None, str, object] = None, qkv_fused: Optional[bool] = None,
                 head_dim: Optional[int] = None, **kernel_kwargs) -> None:
        super().__init__()
        if head_dim is None:
            if dim % num_heads:
                raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
            head_dim = dim // num_heads
        elif head_dim < 1:
            raise ValueError(f'head_dim must be >= 1, got {head_dim}')
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = head_dim
        #: the kernel's channels (``dim`` unless ``head_dim`` was given)
        self.inner_dim = inner = num_heads * head_dim
        self.num_prefix_tokens = num_prefix_tokens
        self.sr_ratio = sr_ratio
        self.qkv_fused = (sr_ratio == 1) if qkv_fused is None else bool(qkv_fused)
        if self.qkv_fused and sr_ratio > 1:
            raise ValueError('a fused qkv projection cannot be used with sr_ratio > 1')
        if self.qkv_fused:
            self.qkv = nn.Linear(dim, inner * 3, bias=qkv_bias)
        else:
            self.q = nn.Linear(dim, inner, bias=qkv_bias)
            self.kv = nn.Linear(dim, inner * 2, bias=qkv_bias)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)
        if attn not in ATTENTIONS:
            raise KeyError(f'unknown attention {attn!r}; known: {sorted(ATTENTIONS)}')
        cls = ATTENTIONS[attn]
        if genome is not None and _accepts(cls, 'genome'):
            kernel_kwargs['genome'] = genome
        self.kernel = cls(head_dim=self.head_dim, num_heads=num_heads,
                          num_prefix_tokens=num_prefix_tokens, v_branch=v_branch,
                          attn_drop=attn_drop, **kernel_kwargs)
        self.attn = attn
        self.proj = nn.Linear(inner, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, hw: HW, attn_bias: Optional[torch.Tensor] = None,
                mask: Optional[TokenMask] = None) -> torch.Tensor:
        """``mask`` (:class:`TokenMask`, DynamicViT): with ``mask.index`` the ``N`` tokens are a
        subset of the ``p + H*W`` layout; kernels must have ``supports_token_mask`` and
        ``sr_ratio`` must be 1."""
        B, N, C = x.shape
        h, d, p = self.num_heads, self.head_dim, self.num_prefix_tokens
        H, W = hw
        kw = {}
        if mask is not None:
            if not self.kernel.supports_token_mask:
                why = getattr(self.kernel, 'token_mask_problem', None)
                raise ValueError(f'attention {self.attn!r} does not support token masks (token pruning)'
                                 + (f': {why}' if why else ''))
            if self.sr_ratio > 1:
                raise ValueError('token masks need keys/values at the query tokens (sr_ratio 1)')
            kw['mask'] = mask
        if N != p + H * W and (mask is None or mask.index is None):
            raise ValueError(f'{N} tokens but {p} prefix + {H}x{W} grid')
        kv_hw: Optional[HW] = hw
        if self.qkv_fused:
            q, k, v = self.qkv(x).reshape(B, N, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            q = self.q(x).reshape(B, N, h, d).transpose(1, 2)
            xkv = x
            if self.sr_ratio > 1:
                grid = x[:, p:].transpose(1, 2).reshape(B, C, H, W)
                grid = self.sr(grid)
                kv_hw = (grid.shape[-2], grid.shape[-1])
                xkv = self.norm(torch.cat([x[:, :p], grid.flatten(2).transpose(1, 2)], dim=1))
            M = xkv.shape[1]
            k, v = self.kv(xkv).reshape(B, M, 2, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        out = self.kernel(q, k, v, hw, attn_bias=attn_bias, kv_hw=kv_hw, **kw)
        out = out.transpose(1, 2).reshape(B, N, h * d)
        return self.proj_drop(self.proj(out))

    def extra_repr(self) -> str:
        inner = f', head_dim={self.head_dim}' if self.inner_dim != self.dim else ''
        return f'dim={self.dim}, num_heads={self.num_heads}{inner}, attn={self.attn!r}, sr_ratio={self.sr_ratio}'
