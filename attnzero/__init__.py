"""attnzero: discover efficient (linear-complexity) attention for Vision Transformers."""
from .version import __version__
from . import models  # noqa: F401  (registers the backbones in timm)

__all__ = ['__version__']
