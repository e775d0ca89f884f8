"""Attn-Bench-101: precomputed proxy results of sampled attentions, a query API and a surrogate.

>>> from attnzero import bench
>>> b = bench.load()                         # the shipped bench; verifies MANIFEST.json sha256
>>> rec = b.lookup('i3n303:elu;ones_aug;elu;-;-;homog_div:einsum1,matmul,second')  # any form
>>> best = b.filter(trained=True).topk(10, 'score')
>>> df = b.to_pandas()
>>> s = b.surrogate(); s.tau                 # held-out Kendall tau of the accuracy surrogate

Modules: :mod:`.format` (file format, manifest), :mod:`.evaluate` (one genome through the search's
evaluation pipeline), :mod:`.build` (sampling, de-duplication, resumable building), :mod:`.query`
(``Bench``, ``load``), :mod:`.surrogate`, :mod:`.analyze` (design insights and the report).
The format is documented in ``docs/bench.md``.
"""
from .format import (FORMAT_NAME, FORMAT_VERSION, BenchError, BenchFormatError,
                     BenchIntegrityError)
from .query import Bench, as_genome, default_path, load
from .surrogate import Surrogate, fit_surrogate  # scikit-learn / scipy are imported when fitting

__all__ = ['load', 'Bench', 'as_genome', 'default_path', 'FORMAT_NAME', 'FORMAT_VERSION',
           'BenchError', 'BenchIntegrityError', 'BenchFormatError', 'Surrogate', 'fit_surrogate']
