"""Token reduction for plain ViTs (the compact-ViT survey's token-merging and pruning methods).

:class:`PatchMerger` -- Renggli et al., "Learning to Merge Tokens in Vision Transformers", 2022:
one learned merge of the ``N`` patch tokens into ``M`` output tokens. Each output token ``j`` is a
softmax-weighted average of the inputs, with weights from a linear score on the layer-normed tokens:
``out_j = sum_n softmax_n(W_j . LN(x_n)) x_n``. Prefix tokens (cls) are kept as they are.

:func:`build_token_reduction` reads the backbone option ``token_reduction=dict(type='patchmerger',
num_tokens=M, after=K)`` (merge after block ``K``, default the middle of the network). ``M`` must
be a square: the blocks after the merge see the ``M`` tokens as a ``sqrt(M) x sqrt(M)`` grid, so
kernels with a spatial branch (the depthwise conv on V of ``attnzero``/``focused``, agent
pooling) keep working (the grid is a layout of the merged tokens, not an image region).

:class:`DynamicTokenPruner` -- Rao et al., "DynamicViT: Efficient Vision Transformers with Dynamic
Token Sparsification", NeurIPS 2021: prediction modules before the blocks at ``locations``
(default 1/4, 1/2 and 3/4 of the depth) keep ``rho``, ``rho^2``, ``rho^3`` of the patch tokens.

* Training: each module scores the patch tokens (a local feature and a decision-weighted global
  one), a straight-through Gumbel-softmax turns the scores into 0/1 keep decisions (multiplied by
  the earlier ones), and the blocks run on every token with the decisions as a
  :class:`~attnzero.attention.TokenMask`: a dropped token is no key/value of anyone, which linear
  kernels realise by weighting the rows of ``phi(K)`` and ``V`` (no ``N x N`` mask). Losses
  (:func:`dynamicvit_loss`): the keep-ratio MSE and the distillation to the unpruned teacher
  (KL on the logits, MSE on the kept tokens); cross-entropy is the classifier's.
* Inference: top-k of the keep scores hard-prunes the tokens (``int(N * rho^s)`` kept at stage
  ``s``); the blocks run on the kept tokens only, which gives the masked computation's result on
  them (spatial branches see the pruned tokens as zeros on the grid, as in training).

Option: ``token_reduction=dict(type='dynamicvit', keep=0.7, locations=None, tau=1.0)``. Needs
kernels with ``supports_token_mask``: every kernel of the zoo, and ``attnzero`` with any genome that
has a token-masked form (:func:`attnzero.space.mask_problem`; Trial-105 and Trial-140 do). lsh and
sepvit, whose hash buckets and windows are laid out on the full token grid, run hard-pruned blocks
on that grid with the pruned tokens at weight 0: the same result, but no saving in those blocks.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ['PatchMerger', 'TokenPredictor', 'DynamicTokenPruner', 'build_token_reduction',
           'dynamicvit_loss', 'TOKEN_REDUCTIONS']

TOKEN_REDUCTIONS = ('patchmerger', 'dynamicvit')


class PatchMerger(nn.Module):
    """``(B, N, C)`` patch tokens -> ``(B, M, C)`` merged tokens (see the module docstring)."""

    def __init__(self, dim: int, num_tokens: int) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.norm = nn.LayerNorm(dim)
        self.queries = nn.Linear(dim, num_tokens, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.queries(self.norm(x)).softmax(dim=1)       # (B, N, M), softmax over inputs
        return weights.transpose(1, 2) @ x

    def extra_repr(self) -> str:
        return f'num_tokens={self.num_tokens}'


def default_locations(depth: int) -> List[int]:
    """DynamicViT's pruning locations for ``depth`` blocks: before the blocks at 1/4, 1/2, 3/4."""
    return [depth // 4, depth // 2, 3 * depth // 4]


class TokenPredictor(nn.Module):
    """DynamicViT's prediction module: ``(B, N, C)`` patch tokens -> ``(B, N, 2)`` log-probabilities
    of (keep, drop). A LayerNorm-Linear-GELU projection, split into a per-token half and a global
    half averaged over the tokens (weighted by the current decisions ``policy`` ``(B, N)``, if
    given), then an MLP to the two classes."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.in_conv = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU())
        self.out_conv = nn.Sequential(nn.Linear(dim, dim // 2), nn.GELU(), nn.Linear(dim // 2, dim // 4),
                                      nn.GELU(), nn.Linear(dim // 4, 2), nn.LogSoftmax(dim=-1))

    def forward(self, x: torch.Tensor, policy: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.in_conv(x)
        B, N, C = x.shape
        half = C // 2
        local, glob = x[..., :half], x[..., half:]
        if policy is None:
            g = glob.mean(dim=1, keepdim=True)
        else:
            p = policy.to(x.dtype).unsqueeze(-1)
            g = (glob * p).sum(dim=1, keepdim=True) / p.sum(dim=1, keepdim=True).clamp_min(1e-6)
        return self.out_conv(torch.cat([local, g.expand(B, N, C - half)], dim=-1))


class DynamicTokenPruner(nn.Module):
    """DynamicViT's token sparsification for a ``depth``-block ViT (see the module docstring).

    Args:
        dim: token channels.
        depth: number of blocks.
        keep: ``rho``, the fraction of the patch tokens each stage keeps of the previous one.
        locations: block indices before which a prediction module runs (increasing, in
            ``1..depth-1``); default ``(depth // 4, depth // 2, 3 * depth // 4)``.
        tau: Gumbel-softmax temperature (training).
        num_prefix_tokens: leading tokens that are always kept (the cls token).
    """

    def __init__(self, dim: int, depth: int, keep: float = 0.7, locations: Optional[Sequence[int]] = None,
                 tau: float = 1.0, num_prefix_tokens: int = 1) -> None:
        super().__init__()
        self.keep, self.tau, self.num_prefix_tokens = float(keep), float(tau), num_prefix_tokens
        self.locations = tuple(locations if locations is not None else default_locations(depth))
        self.predictors = nn.ModuleList([TokenPredictor(dim) for _ in self.locations])

    @property
    def keep_ratios(self) -> List[float]:
        """The fraction of the patch tokens kept after each stage: ``rho^(s+1)``."""
        return [self.keep ** (s + 1) for s in range(len(self.locations))]

    def num_keep(self, n_patches: int, stage: int) -> int:
        """Patch tokens kept after ``stage`` at inference, of ``n_patches``."""
        return max(1, int(n_patches * self.keep_ratios[stage]))

    def stage_at(self, block: int) -> Optional[int]:
        """The stage whose prediction module runs before ``block``, or ``None``."""
        return self.locations.index(block) if block in self.locations else None

    def soft_step(self, stage: int, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Training: new token weights ``(B, N)`` (prefix 1; patches: straight-through 0/1 Gumbel
        decisions times the current ones) from tokens ``x`` ``(B, N, C)``."""
        p = self.num_prefix_tokens
        logp = self.predictors[stage](x[:, p:], weight[:, p:])
        hard = F.gumbel_softmax(logp, tau=self.tau, hard=True)[..., 0]
        return torch.cat([weight[:, :p], hard * weight[:, p:]], dim=1)

    def hard_step(self, stage: int, x: torch.Tensor, index: torch.Tensor, n_patches: int
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Inference: keep the top-``num_keep`` patch tokens by keep score (in their grid order).
        ``x`` ``(B, n, C)`` present tokens, ``index`` ``(B, n)`` their positions; returns both pruned."""
        p = self.num_prefix_tokens
        score = self.predictors[stage](x[:, p:])[..., 0]
        top = score.topk(self.num_keep(n_patches, stage), dim=1).indices.sort(dim=1).values
        kept = x[:, p:].gather(1, top.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        return (torch.cat([x[:, :p], kept], dim=1),
                torch.cat([index[:, :p], index[:, p:].gather(1, top)], dim=1))

    def extra_repr(self) -> str:
        return f'keep={self.keep}, locations={self.locations}, tau={self.tau}'


def dynamicvit_loss(decisions: Sequence[torch.Tensor], keep_ratios: Sequence[float],
                    logits: Optional[torch.Tensor] = None, teacher_logits: Optional[torch.Tensor] = None,
                    tokens: Optional[torch.Tensor] = None, teacher_tokens: Optional[torch.Tensor] = None,
                    ratio_weight: float = 2.0, distill_weight: float = 0.5) -> Dict[str, torch.Tensor]:
    """DynamicViT's losses beside the classification loss.

    * ``loss_ratio``: ``ratio_weight`` x the mean over stages of the batch-mean squared difference
      between each sample's kept fraction (``decisions[s]`` ``(B, N)``) and ``keep_ratios[s]``;
    * ``loss_distill``: ``distill_weight`` x KL(teacher || student) of the logits (batch mean);
    * ``loss_token``: ``distill_weight`` x the MSE between the final patch ``tokens`` ``(B, N, C)``
      and the teacher's, over the tokens the last decision keeps.

    The distillation terms are returned only when the teacher's outputs are given."""
    if len(decisions) != len(keep_ratios):
        raise ValueError(f'{len(decisions)} decisions for {len(keep_ratios)} keep ratios')
    ratio = sum(((d.mean(dim=1) - r) ** 2).mean() for d, r in zip(decisions, keep_ratios)) / len(decisions)
    out = dict(loss_ratio=ratio_weight * ratio)
    if teacher_logits is not None and logits is not None:
        out['loss_distill'] = distill_weight * F.kl_div(
            F.log_softmax(logits, dim=-1), F.log_softmax(teacher_logits.detach(), dim=-1),
            reduction='batchmean', log_target=True)
    if teacher_tokens is not None and tokens is not None:
        m = decisions[-1].to(tokens.dtype).unsqueeze(-1)
        sq = (tokens - teacher_tokens.detach()) ** 2 * m
        out['loss_token'] = distill_weight * sq.sum() / (m.sum() * tokens.shape[-1]).clamp_min(1.0)
    return out


def build_token_reduction(cfg: Optional[Dict[str, Any]], dim: int, depth: int
                          ) -> Tuple[Optional[nn.Module], Optional[int]]:
    """``(module, after)`` for a ``token_reduction`` option (``(None, None)`` for ``None``; ``after``
    is ``None`` for ``dynamicvit``, whose module knows its locations); a bad option raises
    ``ValueError`` naming it."""
    if cfg is None:
        return None, None
    cfg = dict(cfg)
    kind = cfg.pop('type', None)
    if kind not in TOKEN_REDUCTIONS:
        raise ValueError(f'token_reduction type {kind!r} is not known; known: {", ".join(TOKEN_REDUCTIONS)}')
    if kind == 'dynamicvit':
        keep = cfg.pop('keep', 0.7)
        locations = cfg.pop('locations', None)
        tau = cfg.pop('tau', 1.0)
        if cfg:
            raise ValueError(f'token_reduction {kind!r}: unknown option(s) {sorted(cfg)}')
        if not isinstance(keep, (int, float)) or not 0 < keep < 1:
            raise ValueError(f'token_reduction {kind!r}: keep must be in (0, 1), got {keep!r}')
        locs = list(locations) if locations is not None else default_locations(depth)
        if (not locs or any(not isinstance(i, int) or not 1 <= i < depth for i in locs)
                or locs != sorted(set(locs))):
            raise ValueError(f'token_reduction {kind!r}: locations must be increasing block indices '
                             f'in 1..{depth - 1}, got {locs!r}' + (' (the default for this depth)'
                                                                   if locations is None else ''))
        if not isinstance(tau, (int, float)) or tau <= 0:
            raise ValueError(f'token_reduction {kind!r}: tau must be > 0, got {tau!r}')
        return DynamicTokenPruner(dim, depth, keep, locs, tau), None
    m = cfg.pop('num_tokens', None)
    after = cfg.pop('after', depth // 2)
    if cfg:
        raise ValueError(f'token_reduction {kind!r}: unknown option(s) {sorted(cfg)}')
    if not isinstance(m, int) or m < 1 or math.isqrt(m) ** 2 != m:
        raise ValueError(f'token_reduction {kind!r}: num_tokens must be a square number >= 1, got {m!r}')
    if not isinstance(after, int) or not 1 <= after < depth:
        raise ValueError(f'token_reduction {kind!r}: after must be a block index in 1..{depth - 1}, got {after!r}')
    return PatchMerger(dim, m), after
