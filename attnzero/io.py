"""Durable file writes shared by the search (run directories) and the bench (data files).

Standard library only, so that any layer can use it.

:func:`atomic_write_text` -- replace a file so that a crash at any point leaves either the old or
the new content, never a torn one:

1. the text goes to a temporary file in the *same directory* (``os.replace`` is atomic only
   within one file system), named ``.<name>.<random>.tmp`` so it is hidden and recognisable;
2. the temporary file gets the permissions the result should have: those of the file it
   replaces, or, for a new file, ``0o666`` minus the process umask -- what ``open(path, 'w')``
   would give, applied by the kernel at creation (``mkstemp`` creates ``0o600`` files, which
   would make shared data unreadable; reading the umask means setting it, which races with
   other threads);
3. the content is flushed and ``fsync``-ed, then ``os.replace``-d over ``path``, and the directory
   is ``fsync``-ed so that the rename itself is durable (skipped where the platform cannot);
4. on any error (or interrupt) the temporary file is removed and the error re-raised; ``path`` is
   untouched.

:func:`atomic_write_bytes` -- the same for bytes; :func:`atomic_savefig` -- a matplotlib figure,
rendered in memory and written with it.

:func:`append_line` -- append one line durably: one ``O_APPEND`` write of the whole encoded line
(repeated only for the rest of a short write), then ``fsync``. A crash can leave at most a torn
*last* line, which the readers of the jsonl files detect and repair.

:func:`read_jsonl` -- read such a file back, dropping (and with ``repair=True`` cutting) a torn
last line.

:func:`data_path` -- where the data shipped inside the package (``attnzero/data``) is.

:func:`loadavg` -- the load averages that every timed measurement records beside its figures.

:func:`tool_command` -- the command line of a ``tools/`` script as its outputs record it.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shlex
import stat
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ['atomic_write_text', 'atomic_write_bytes', 'atomic_savefig', 'append_line', 'read_jsonl',
           'JsonlError', 'fsync_dir', 'data_path', 'loadavg', 'tool_command', 'sha256_file']


class JsonlError(ValueError):
    """A jsonl file has a malformed line that is not a torn last line."""


def _create_temp(directory: str, name: str) -> tuple:
    """A new hidden ``.<name>.<random>.tmp`` in ``directory``, opened for writing with mode
    ``0o666`` (the kernel applies the umask); returns ``(fd, path)``."""
    for _ in range(100):
        tmp = os.path.join(directory, f'.{name}.{secrets.token_hex(4)}.tmp')
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f'no free temporary name for {name!r} in {directory!r}')


def fsync_dir(path: str) -> None:
    """``fsync`` a directory (makes a rename in it durable); a no-op where that is unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str, text: str, encoding: str = 'utf-8') -> None:
    """Write ``text`` to ``path`` atomically and durably (see the module docstring)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (see the module docstring)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)  # a replaced file keeps its permissions
    except FileNotFoundError:
        mode = None  # a new one: 0o666 minus the umask, from the creation itself
    fd, tmp = _create_temp(directory, os.path.basename(path))
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def append_line(path: str, line: str, encoding: str = 'utf-8') -> None:
    """Append ``line`` (a newline is added if missing) to ``path`` durably (see the module
    docstring); a new file gets ``0o666`` minus the umask, as with ``open(path, 'a')``."""
    data = (line if line.endswith('\n') else line + '\n').encode(encoding)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask applies
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: str, repair: bool = False) -> Tuple[List[Dict[str, Any]], int]:
    """Read a jsonl file. Returns ``(records, n_dropped)``.

    A torn last line (no trailing newline and not valid JSON: the process died mid-append) is
    dropped; with ``repair=True`` it is also cut from the file so the next append starts clean.
    Any other malformed line raises :class:`JsonlError` (a ``ValueError``; line number given).
    A missing file reads as empty.
    """
    if not os.path.exists(path):
        return [], 0
    with open(path, 'rb') as f:
        data = f.read()
    lines = data.split(b'\n')
    tail = lines.pop()  # b'' if the file ends with a newline
    records: List[Dict[str, Any]] = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as e:
            raise JsonlError(f'{path}: line {i} is not valid JSON ({e})') from None
    dropped = 0
    if tail.strip():
        try:
            records.append(json.loads(tail))
            if repair:  # complete record without its newline: add the newline
                with open(path, 'ab') as f:
                    f.write(b'\n')
                    f.flush()
                    os.fsync(f.fileno())
        except ValueError:
            dropped = 1
            if repair:
                with open(path, 'rb+') as f:
                    f.truncate(len(data) - len(tail))
                    f.flush()
                    os.fsync(f.fileno())
    return records, dropped


def atomic_savefig(fig, path: str, **kwargs) -> None:
    """Save a matplotlib figure to ``path`` atomically (rendered in memory, in the format of the
    file's extension, then written with :func:`atomic_write_bytes`); ``kwargs`` go to
    ``fig.savefig`` (``dpi``, ``metadata`` ...)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=os.path.splitext(path)[1].lstrip('.') or 'png', **kwargs)
    atomic_write_bytes(path, buf.getvalue())


def data_path(*parts: str) -> str:
    """Path of a file or folder shipped in the package's ``data`` folder (``attnzero/data``;
    installed with the package as package data), located from this module, so it works from a
    source checkout and from an installed package alike."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', *parts)


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in ``chunk``-byte pieces."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for b in iter(lambda: f.read(chunk), b''):
            h.update(b)
    return h.hexdigest()


def loadavg() -> str:
    """The 1, 5 and 15 min load averages as ``'0.52 0.61 0.70'`` (``'n/a'`` where the platform has
    none)."""
    try:
        return '{:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())
    except OSError:  # pragma: no cover
        return 'n/a'


def tool_command(tool: str, argv: Optional[Sequence[str]] = None) -> str:
    """``python tools/<tool>.py ARGS`` as a user types it (shell-quoted; ``argv`` defaults to this
    process's arguments), the line every tool records in its outputs."""
    return f'python tools/{tool}.py ' + shlex.join(list(argv) if argv is not None else sys.argv[1:])
