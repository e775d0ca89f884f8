"""attnzero.io: the atomic / durable writes shared by the search state and the bench files."""
from __future__ import annotations

import os
import stat

import pytest

from attnzero.bench import format as bench_format
from attnzero.io import JsonlError, append_line, atomic_savefig, atomic_write_text, data_path, read_jsonl
from attnzero.search import state as search_state


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_one_implementation():
    assert bench_format.atomic_write_text is atomic_write_text
    assert search_state.atomic_write_text is atomic_write_text


def test_new_file_respects_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        p = tmp_path / 'a.json'
        atomic_write_text(str(p), 'x\n')
    finally:
        os.umask(old)
    assert p.read_text() == 'x\n'
    assert _mode(p) == 0o640                       # 0o666 & ~umask, like open(path, 'w')
    assert os.listdir(tmp_path) == ['a.json']      # no temporary file left behind


def test_replacing_keeps_the_permissions(tmp_path):
    p = tmp_path / 'state.json'
    p.write_text('old')
    os.chmod(p, 0o604)
    atomic_write_text(str(p), 'new')
    assert p.read_text() == 'new' and _mode(p) == 0o604


def test_failed_write_leaves_the_old_content(tmp_path, monkeypatch):
    p = tmp_path / 'state.json'
    p.write_text('old')

    def boom(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', boom)
    with pytest.raises(OSError, match='disk full'):
        atomic_write_text(str(p), 'new')
    assert p.read_text() == 'old'
    assert os.listdir(tmp_path) == ['state.json']


def test_append_line(tmp_path):
    p = tmp_path / 'log.jsonl'
    append_line(str(p), '{"a": 1}')
    append_line(str(p), '{"b": 2}\n')
    assert p.read_text() == '{"a": 1}\n{"b": 2}\n'


def test_read_jsonl_drops_and_repairs_only_a_torn_last_line(tmp_path):
    p = str(tmp_path / 'a.jsonl')
    assert read_jsonl(p) == ([], 0)
    append_line(p, '{"a": 1}')
    with open(p, 'a') as f:
        f.write('{"a": ')  # killed mid-append
    assert read_jsonl(p) == ([{'a': 1}], 1)
    assert open(p).read().endswith('{"a": ')  # only repair=True changes the file
    assert read_jsonl(p, repair=True) == ([{'a': 1}], 1)
    append_line(p, '{"b": 2}')
    assert read_jsonl(p) == ([{'a': 1}, {'b': 2}], 0)
    with open(p, 'a') as f:
        f.write('{"c": 3}')  # complete, newline lost: kept, and the newline restored
    assert read_jsonl(p, repair=True) == ([{'a': 1}, {'b': 2}, {'c': 3}], 0)
    assert open(p).read().endswith('{"c": 3}\n')
    with open(p, 'w') as f:
        f.write('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(JsonlError, match='line 2'):
        read_jsonl(p)
    with pytest.raises(bench_format.BenchFormatError, match='line 2'):
        bench_format.read_jsonl(p)


def test_atomic_savefig_writes_the_extensions_format(tmp_path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    atomic_savefig(fig, str(tmp_path / 'a.png'), dpi=20)
    atomic_savefig(fig, str(tmp_path / 'a.svg'))
    plt.close(fig)
    assert (tmp_path / 'a.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert b'<svg' in (tmp_path / 'a.svg').read_bytes()
    assert sorted(os.listdir(tmp_path)) == ['a.png', 'a.svg']  # no temporary file left


def test_data_path_is_inside_the_package():
    import attnzero

    assert data_path('x.json') == os.path.join(os.path.dirname(os.path.abspath(attnzero.__file__)),
                                               'data', 'x.json')
    assert os.path.isfile(data_path('published_imagenet.json'))
