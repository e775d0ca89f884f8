"""Reusable building blocks of the attnzero backbones (no attention math here: see
:mod:`attnzero.attention`)."""
from .attn_select import (attention_is_linear, attention_makes_windows, attention_takes_token_mask, attention_needs_full_kv, drop_path_rates, attention_supports_bias, family_default_genome,
                          make_attention, make_kernel, per_stage, resolve_stage_attn)
from .block import TransformerBlock, run_blocks
from .embed import PatchEmbed, PatchMerging
from .mlp import DWMlp, Mlp
from .padding import nchw_to_tokens, pad_hw_to_multiple, pad_to_multiple, tokens_to_nchw
from .pyramid import SimpleFeaturePyramid
from .token_reduction import DynamicTokenPruner, PatchMerger, build_token_reduction, dynamicvit_loss
from .windows import window_partition, window_reverse

__all__ = [
    'attention_is_linear', 'attention_makes_windows', 'attention_takes_token_mask', 'attention_needs_full_kv', 'drop_path_rates', 'attention_supports_bias', 'family_default_genome', 'resolve_stage_attn', 'make_attention', 'make_kernel', 'per_stage',
    'TransformerBlock', 'run_blocks', 'PatchEmbed', 'PatchMerging', 'DWMlp', 'Mlp', 'nchw_to_tokens',
    'pad_hw_to_multiple', 'pad_to_multiple', 'tokens_to_nchw', 'SimpleFeaturePyramid', 'PatchMerger', 'DynamicTokenPruner', 'build_token_reduction', 'dynamicvit_loss',
    'window_partition', 'window_reverse',
]
