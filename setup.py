"""attnzero: discover efficient attention for Vision Transformers by evolutionary search.

The heavy OpenMMLab stack (mmcv with compiled ops in particular) is installed by
``tools/install.sh``; the extras below name what each part of the project needs.
"""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version() -> str:
    with open(os.path.join(HERE, 'attnzero', 'version.py'), encoding='utf-8') as f:
        match = re.search(r"__version__\s*=\s*'([^']+)'", f.read())
    if not match:
        raise RuntimeError('attnzero/version.py has no __version__')
    return match.group(1)


CORE = [
    'torch>=2.6',
    'numpy>=2.0',
    'timm>=1.0',
    'pymoo>=0.6.1',
    'tqdm',
    'rich',
    'matplotlib',
    'pyyaml',
    'psutil',   # local search workers end when their parent process is gone
]
EXTRAS = {
    # OpenMMLab transfer (issue 6); mmcv 2.1.0 must be built from source: see tools/install.sh
    'mm': [
        'mmengine==0.10.7',
        'mmcv==2.1.0',
        'mmdet==3.3.0',
        'mmsegmentation==1.2.2',
        'mmpretrain==1.2.0',
        'ftfy',
        'regex',
        'pycocotools',
        'scipy',
    ],
    'dist': ['dask[distributed]'],
    'bench': ['pandas', 'pyarrow', 'scikit-learn'],
    # ONNX export (torch.onnx.export(..., dynamo=True)) and its check with onnxruntime
    'deploy': ['onnx', 'onnxruntime', 'onnxscript'],
    'dev': ['pytest', 'pytest-timeout'],
}
EXTRAS['all'] = sorted({req for reqs in EXTRAS.values() for req in reqs})

setup(
    name='attnzero',
    version=read_version(),
    description='Evolutionary discovery of linear-complexity attention for Vision Transformers, '
                'with OpenMMLab transfer to detection and segmentation.',
    long_description=open(os.path.join(HERE, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['attnzero', 'attnzero.*']),
    include_package_data=True,
    # attnzero.data is a package (its generators are modules): its data files, and those of its
    # data folders (e.g. a bench directory), ship with it
    package_data={'attnzero.data': ['*.json', '*.jsonl', '*/*']},
    exclude_package_data={'attnzero.data': ['__pycache__/*']},
    install_requires=CORE,
    extras_require=EXTRAS,
    # one console script per tool of tools/ (python tools/X.py is the same command)
    entry_points={'console_scripts': [
        'attnzero-train=attnzero.mm.runner:train_main',
        'attnzero-test=attnzero.mm.runner:test_main',
        'attnzero-export=attnzero.models.export:main',
        'attnzero-search=attnzero.search.cli:search_main',
        'attnzero-proxy-fidelity=attnzero.search.cli:proxy_fidelity_main',
        'attnzero-search-efficiency=attnzero.search.cli:search_efficiency_main',
        'attnzero-supernet=attnzero.search.cli:supernet_main',
        'attnzero-slim=attnzero.search.cli:slim_main',
        'attnzero-build-bench=attnzero.bench.cli:build_main',
        'attnzero-analyze-bench=attnzero.bench.cli:analyze_main',
        'attnzero-benchmark-attention=attnzero.perf.attention:main',
        'attnzero-benchmark-backbone=attnzero.perf.backbone:main',
        'attnzero-benchmark-ops=attnzero.perf.ops:main',
        'attnzero-benchmark-fps=attnzero.perf.fps:main',
        'attnzero-benchmark-cp-memory=attnzero.perf.memory:main',
        'attnzero-get-flops=attnzero.perf.flops:main',
        'attnzero-make-toy-data=attnzero.data.toy:main',
        'attnzero-transfer=attnzero.transfer:main',
        'attnzero-zero-cost=attnzero.bench.cli:zero_cost_main',
        'attnzero-surrogate-cv=attnzero.bench.cli:surrogate_cv_main',
        'attnzero-space-report=attnzero.space.report:main',
    ]},
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
