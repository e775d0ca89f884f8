"""The package works from a wheel, not only from a source checkout (issue 15).

A wheel is built from a copy of the working tree (git's tracked and untracked-but-not-ignored
files, so an uncommitted data file that setup.py forgets to ship fails here, as it would for a
user), installed non-editable into a fresh virtual environment, and used from a directory outside
the checkout: ``import attnzero`` resolves to the installed copy, the shipped Attn-Bench-101 loads
with its manifest verified, every registered timm model builds and runs, and the console entry
points exist.

The fresh venv reuses this environment's third-party packages (torch, timm, ... are not
downloaded again) through a path entry; that entry does not process this environment's ``.pth``
files, so the editable install of the checkout is invisible to it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import pytest

from attnzero.models import MODEL_NAMES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHECK = textwrap.dedent('''
    import json, os, sys
    import timm, torch
    import attnzero
    from attnzero import bench
    out = {'file': attnzero.__file__}
    b = bench.load()  # the shipped bench, manifest and sha256 verified
    out['bench_records'] = len(b.records)
    names = sorted(timm.list_models('attnzero_*'))
    built = {}
    for name in names:
        m = timm.create_model(name, img_size=64).eval()
        with torch.no_grad():
            y = m(torch.randn(1, 3, 64, 64))
        built[name] = list(y.shape)
    out['models'] = built
    print(json.dumps(out))
''')


def _tree_files():
    r = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                       cwd=ROOT, capture_output=True, check=True)
    return [p for p in r.stdout.decode().split('\0') if p and os.path.exists(os.path.join(ROOT, p))]


@pytest.mark.skipif(shutil.which('git') is None or not os.path.isdir(os.path.join(ROOT, '.git')),
                    reason='needs a git checkout')
def test_wheel_installs_into_a_fresh_venv_and_works(tmp_path):
    src = tmp_path / 'src'
    for rel in _tree_files():
        if rel.startswith(('tests/', 'docs/')):
            continue  # not part of the wheel; keeps the copy small
        dst = src / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), dst)
    wheels = tmp_path / 'wheels'
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                    '-q', '-w', str(wheels), str(src)], check=True, capture_output=True)
    (wheel,) = list(wheels.glob('attnzero-*.whl'))

    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    py = venv / 'bin' / 'python'
    site = subprocess.run([str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                          capture_output=True, text=True, check=True).stdout.strip()
    # third-party packages of this environment, as a plain path entry (no .pth processing there)
    with open(os.path.join(site, '_attnzero_test_deps.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    subprocess.run([str(py), '-m', 'pip', 'install', '--no-deps', '--no-index', '-q', str(wheel)],
                   check=True, capture_output=True)

    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    r = subprocess.run([str(py), '-c', CHECK], cwd=elsewhere, capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out['file'].startswith(site), out['file']  # the installed copy, not the checkout
    assert out['bench_records'] > 0
    assert sorted(out['models']) == sorted(MODEL_NAMES), sorted(out['models'])
    assert all(shape == [1, 1000] for shape in out['models'].values()), out['models']
    for script in ('attnzero-train', 'attnzero-test'):
        assert (venv / 'bin' / script).exists(), script
