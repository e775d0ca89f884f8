"""attnzero: discover efficient (linear-complexity) attention for Vision Transformers."""
from .version import __version__

__all__ = ['__version__']
