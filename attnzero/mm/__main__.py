"""``python -m attnzero.mm train|test ARGS...``: ``tools/train.py`` / ``tools/test.py`` without the
repository checkout (what :mod:`attnzero.transfer` launches for each run)."""
import sys

from .runner import test_main, train_main

_COMMANDS = {'train': train_main, 'test': test_main}

if __name__ == '__main__':
    if len(sys.argv) < 2 or sys.argv[1] not in _COMMANDS:
        print(f'usage: python -m attnzero.mm {{{",".join(_COMMANDS)}}} ARGS...', file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(_COMMANDS[sys.argv[1]](sys.argv[2:]))
