"""attnzero backbones (timm style, one file per family) and their timm registrations.

Importing this package registers in timm (``timm.create_model(name, attn=..., genome=...)``):
``attnzero_deit_{tiny,small}``, ``attnzero_pvt_{tiny,small}``, ``attnzero_pvt_v2_{b0,b1,b2}``,
``attnzero_swin_{tiny,small}``, ``attnzero_cswin_{tiny,small}``,
``attnzero_efficientformer_{l1,l3}``.
"""
from ._base import BackboneBase
from .checkpoint import adapt_state_dict, checkpoint_filter_fn, load_checkpoint_into
from .cswin import CSWIN_ARCHS, CSwin, attnzero_cswin_small, attnzero_cswin_tiny
from .deit import DEIT_ARCHS, VIT_SHAPES, DeiT, attnzero_deit_small, attnzero_deit_tiny, attnzero_vit
from .efficientformer import (EFFICIENTFORMER_ARCHS, EfficientFormer, attnzero_efficientformer_l1,
                              attnzero_efficientformer_l3)
from .pvt import PVT, PVT_ARCHS, attnzero_pvt_small, attnzero_pvt_tiny
from .pvt_v2 import PVT_V2_ARCHS, PVTv2, attnzero_pvt_v2_b0, attnzero_pvt_v2_b1, attnzero_pvt_v2_b2
from .swin import SWIN_ARCHS, Swin, attnzero_swin_small, attnzero_swin_tiny

#: every registered timm name
MODEL_NAMES = (
    'attnzero_deit_tiny', 'attnzero_deit_small',
    'attnzero_pvt_tiny', 'attnzero_pvt_small',
    'attnzero_pvt_v2_b0', 'attnzero_pvt_v2_b1', 'attnzero_pvt_v2_b2',
    'attnzero_swin_tiny', 'attnzero_swin_small',
    'attnzero_cswin_tiny', 'attnzero_cswin_small',
    'attnzero_efficientformer_l1', 'attnzero_efficientformer_l3',
    'attnzero_vit',
)

#: family -> (class, arch table)
FAMILIES = {
    'deit': (DeiT, DEIT_ARCHS),
    'pvt': (PVT, PVT_ARCHS),
    'pvt_v2': (PVTv2, PVT_V2_ARCHS),
    'swin': (Swin, SWIN_ARCHS),
    'cswin': (CSwin, CSWIN_ARCHS),
    'efficientformer': (EfficientFormer, EFFICIENTFORMER_ARCHS),
}

__all__ = [
    'BackboneBase', 'CSwin', 'DeiT', 'EfficientFormer', 'PVT', 'PVTv2', 'Swin', 'CSWIN_ARCHS',
    'DEIT_ARCHS', 'VIT_SHAPES', 'EFFICIENTFORMER_ARCHS', 'PVT_ARCHS', 'PVT_V2_ARCHS', 'SWIN_ARCHS', 'FAMILIES',
    'MODEL_NAMES', 'adapt_state_dict', 'checkpoint_filter_fn', 'load_checkpoint_into',
]
