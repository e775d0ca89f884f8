"""Data shipped with the package and small data generators.

* ``published_imagenet.json`` -- published ImageNet top-1 of the reference attentions, with sources
  (read by :mod:`attnzero.search.fidelity`);
* :mod:`.toy` -- toy COCO / ADE20K / ImageNet datasets in the real on-disk formats
  (``tools/make_toy_data.py``).
"""
