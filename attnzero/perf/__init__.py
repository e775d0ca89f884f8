"""Performance measurement: the logic of the benchmark tools.

* :mod:`.runtime` -- opt-in process settings for CPU speed (``tune_malloc``) and ``/proc`` readers;
* :mod:`.timing` -- the timing harness (interleaved rounds, cache flushing, peak memory, tables);
* :mod:`.attention` -- ``tools/benchmark_attention.py`` (the attention zoo and genomes vs N);
* :mod:`.backbone` -- ``tools/benchmark_backbone.py`` (backbones: throughput, high resolution);
* :mod:`.ops` -- ``tools/benchmark_ops.py`` (elementwise kernels, page faults per call);
* :mod:`.flops`, :mod:`.fps` -- ``tools/get_flops.py``, ``tools/benchmark_fps.py`` (models of
  ``mmconfigs/`` configs, built by :mod:`.mmconfig`; need the OpenMMLab stack);
* :mod:`.memory` -- ``tools/benchmark_cp_memory.py`` (training-step memory with / without
  ``with_cp``; needs the OpenMMLab stack).

Nothing is imported here: each module is loaded on its own (the mm ones need mmengine).
"""
