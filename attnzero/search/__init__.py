"""Multi-objective evolutionary search of efficient attention (AttnZero, ECCV 2024).

>>> from attnzero.search import Search, preset
>>> summary = Search(preset('tiny'), '/tmp/run').run()      # doctest: +SKIP

Pieces: :mod:`.config` (settings), :mod:`.proxies` (proxy tasks; the embedded default needs
token mixing), :mod:`.archs` (tiny proxy ViTs from :mod:`attnzero.models`), :mod:`.train`
(proxy training + rejection protocol), :mod:`.evaluate` (the per-candidate pipeline),
:mod:`.operators` (pymoo NSGA-II over genomes), :mod:`.executor` (serial / processes / Dask),
:mod:`.state` (atomic checkpoints), :mod:`.runner` (the loop, resume), :mod:`.report` (outputs),
:mod:`.efficiency` (compute to reach a naive search's hypervolume: ``tools/search_efficiency.py``).
"""
from .config import PRESETS, ConfigError, SearchConfig, preset
from .proxies import ProxyData, ProxyError, load_proxy, make_relational
from .runner import Search, run_search
from .state import RunDirError

__all__ = ['SearchConfig', 'ConfigError', 'PRESETS', 'preset', 'ProxyData', 'ProxyError',
           'load_proxy', 'make_relational', 'Search', 'run_search', 'RunDirError']
