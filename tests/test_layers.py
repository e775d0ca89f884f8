"""The import structure of ``attnzero``: one-way layers, no cycles, no hidden dependencies.

Nothing is imported: every ``attnzero/**/*.py`` file is parsed (:mod:`ast`) and every import
statement is read -- at module level, inside ``if``/``try`` blocks, under ``if TYPE_CHECKING:``,
inside functions and methods -- together with ``importlib.import_module('attnzero...')`` calls
with a literal name. Relative imports are resolved against the importing module (a package's
``__init__`` is the package itself). ``from X import Y`` is an edge to the module ``X.Y`` when
that module exists, else to ``X`` (``Y`` is then a name defined in ``X``); ``import X.Y.Z`` is an
edge to ``X.Y.Z``. A target that is not a file of the tree resolves to its longest existing
prefix.

The parents that Python initialises implicitly (``import attnzero.space.genome`` first runs
``attnzero/__init__.py`` and ``attnzero/space/__init__.py``) are **not** edges: only what a module
names is. This is what makes a package ``__init__`` that re-exports its submodules legal: the
edge ``attnzero.space -> attnzero.space.genome`` is only part of a cycle if ``genome`` itself
names ``attnzero.space`` (e.g. ``from attnzero.space import TRIAL_105`` inside the package),
which is then reported -- rightly: that import runs while ``attnzero.space`` is half initialised.

Checks (each test prints every violation, file and line):

1. **layers** -- every module belongs to exactly one layer of :data:`LAYERS` (longest matching
   prefix; a new module outside every layer fails the test until it is placed). A module may
   import only from its own layer or lower ones; the groups in :data:`SEPARATE` (same rank) must
   not import each other. Type-only imports (``if TYPE_CHECKING:``) count: an upward type import
   still ties the lower layer to the upper one's code.
   The package root ``attnzero/__init__.py`` is the public facade and is exempt from the rank
   rule, with two limits: its eager (module-level) imports may only reach layers up to
   :data:`ROOT_MAX_RANK` (it registers the backbones in timm, so it imports ``attnzero.models``;
   ``search``/``mm``/``bench``/``perf`` are imported by name, ``from attnzero import search``), and
   no module inside the package may import the root (a module names what it needs where it is
   defined, never through the facade).
2. **cycles** -- the graph of all edges (module level, type-only and function-local alike) has no
   strongly connected component of more than one module, and no module imports itself. A
   function-local import is how a cycle hides (it only breaks the cycle at import time), so it
   counts here. Each component is reported once (Tarjan's algorithm), with one shortest cycle
   through it and the import line of every step.
3. **function-local imports** -- an ``attnzero`` module imported inside a function must be in the
   importer's own subpackage (``attnzero.search.*`` importing ``attnzero.search.report`` lazily is
   a local choice; crossing a subpackage or a layer inside a function hides a dependency, so it
   must be at module level where it is visible). A third-party module imported inside a function
   must be one of :data:`OPTIONAL_LOCAL_IMPORTS`: optional dependencies (extras of ``setup.py``)
   and heavy imports needed only on one path. Standard-library modules may be imported anywhere
   (nothing to hide, nothing optional; ``fcntl`` is POSIX-only).

:func:`check_tree` returns the violations of a tree as strings; the self-tests at the end feed it
synthetic trees (and a copy of the real one with one import added) to show that each check fails
when it should.
"""
from __future__ import annotations

import ast
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import pytest

PACKAGE = 'attnzero'
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

#: ``(rank, module prefixes)``, lowest first. Longest prefix wins (``attnzero.data.toy`` is
#: foundation, the rest of ``attnzero.data`` is top layer).
LAYERS: Tuple[Tuple[int, Tuple[str, ...]], ...] = (
    # foundation: no attnzero dependency of substance (version, optional-stack shims, FLOP
    # counting, file I/O helpers, the toy data set)
    (0, ('attnzero.version', 'attnzero.compat', 'attnzero.flops', 'attnzero.io',
         'attnzero.data.toy')),
    (1, ('attnzero.space',)),                 # the genome: ops, graphs, analysis, variation
    (2, ('attnzero.attention',)),             # attention kernels (the compiled genome is one)
    (3, ('attnzero.models',)),                # backbones built from the kernels
    (4, ('attnzero.search', 'attnzero.mm')),  # the search; OpenMMLab transfer (independent)
    # applications: the benchmark, performance tooling, the shipped data package, the transfer
    # of attentions to downstream tasks
    (5, ('attnzero.bench', 'attnzero.perf', 'attnzero.data', 'attnzero.transfer')),
)
#: groups of one rank that must not import each other
SEPARATE: Tuple[Tuple[str, str], ...] = (('attnzero.search', 'attnzero.mm'),)
#: the highest layer the package root may import eagerly (it registers the timm backbones)
ROOT_MAX_RANK = 3

#: Third-party modules that may be imported inside a function (prefix match on the module name).
#: Anything else third-party is a dependency of the module and is imported at its top.
OPTIONAL_LOCAL_IMPORTS: Tuple[str, ...] = (
    # extra 'mm': the OpenMMLab stack (+ scipy, also used by the bench/fidelity statistics)
    'mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain', 'scipy',
    # extra 'dist': Dask executor
    'dask', 'distributed',
    # extra 'bench': surrogate model and tabular export
    'sklearn', 'pandas', 'pyarrow',
    # extra 'deploy': ONNX export and its check
    'onnx', 'onnxruntime', 'onnxscript',
    # not an install requirement: only the ImageFolder / torchvision-dataset proxies need it
    'torchvision',
    # core, but heavy and needed only to draw or show output: matplotlib (~0.3 s, and its backend
    # must be chosen before pyplot is imported), progress bars, console tables
    'matplotlib', 'tqdm', 'rich',
    # core, but heavy submodules used on one path only: pymoo's NSGA-II and non-dominated sorting
    # import scipy.spatial (~0.5 s; the search workers never need them); torch's symbolic-shape
    # machinery (not loaded by ``import torch``; needed only under torch.export) and ONNX exporter
    'pymoo.algorithms', 'pymoo.util.nds', 'torch.fx.experimental', 'torch.onnx',
)

STDLIB: Set[str] = set(sys.stdlib_module_names) | {'__future__'}


# ---- the import graph -----------------------------------------------------------------------
@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


@dataclass(frozen=True)
class Import:
    src: str            # importing module
    target: str         # imported module (resolved; third-party: as written)
    line: int
    local: bool         # inside a function or method
    type_only: bool     # under ``if TYPE_CHECKING:``
    internal: bool      # target is an attnzero module


def discover(package_dir: Path, package: str = PACKAGE) -> Dict[str, Module]:
    """Every module of the tree under ``package_dir`` by dotted name."""
    mods: Dict[str, Module] = {}
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if d != '__pycache__' and not d.startswith('.'))
        rel = Path(dirpath).relative_to(package_dir).parts
        for fn in sorted(filenames):
            if not fn.endswith('.py'):
                continue
            stem = fn[:-3]
            is_pkg = stem == '__init__'
            parts = (package,) + rel + (() if is_pkg else (stem,))
            mods['.'.join(parts)] = Module('.'.join(parts), Path(dirpath) / fn, is_pkg)
    return mods


def _resolve(name: str, modules: Dict[str, Module]) -> str:
    """``name`` or its longest prefix that is a module of the tree."""
    parts = name.split('.')
    while parts:
        cand = '.'.join(parts)
        if cand in modules:
            return cand
        parts.pop()
    return name


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING') or (
        isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING')


class _Collector(ast.NodeVisitor):
    def __init__(self, mod: Module, modules: Dict[str, Module], package: str) -> None:
        self.mod, self.modules, self.package = mod, modules, package
        self.depth = 0
        self.type_only = 0
        self.out: List[Import] = []

    def _add(self, target: str, line: int) -> None:
        internal = target == self.package or target.startswith(self.package + '.')
        if internal:
            target = _resolve(target, self.modules)
        self.out.append(Import(self.mod.name, target, line, self.depth > 0, self.type_only > 0,
                               internal))

    def _scope(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scope

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self.type_only += 1
            for n in node.body:
                self.visit(n)
            self.type_only -= 1
            for n in node.orelse:
                self.visit(n)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            pkg = self.mod.name.split('.')
            if not self.mod.is_package:
                pkg = pkg[:-1]
            if node.level - 1 > len(pkg) - 1:
                raise ValueError(f'{self.mod.path}:{node.lineno}: relative import beyond the package')
            pkg = pkg[:len(pkg) - (node.level - 1)]
            base = '.'.join(pkg + ([node.module] if node.module else []))
        else:
            base = node.module or ''
        if base == '__future__':
            return
        for alias in node.names:
            sub = f'{base}.{alias.name}'
            self._add(sub if sub in self.modules else base, node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else (f.id if isinstance(f, ast.Name) else '')
        if (name in ('import_module', '__import__') and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                and node.args[0].value.split('.')[0] == self.package):
            self._add(node.args[0].value, node.lineno)
        self.generic_visit(node)


def collect_imports(modules: Dict[str, Module], package: str = PACKAGE) -> List[Import]:
    out: List[Import] = []
    for mod in modules.values():
        tree = ast.parse(mod.path.read_text(encoding='utf-8'), filename=str(mod.path))
        c = _Collector(mod, modules, package)
        c.visit(tree)
        out.extend(c.out)
    return list(dict.fromkeys(out))  # ``from X import a, b`` is one edge


# ---- the checks -----------------------------------------------------------------------------
def layer_of(name: str, layers=LAYERS) -> Optional[Tuple[int, str]]:
    """``(rank, group prefix)`` of a module (longest matching prefix), or ``None``."""
    best: Optional[Tuple[int, str]] = None
    for rank, prefixes in layers:
        for p in prefixes:
            if (name == p or name.startswith(p + '.')) and (best is None or len(p) > len(best[1])):
                best = (rank, p)
    return best


def subpackage(name: str) -> str:
    """``attnzero.search.runner`` -> ``attnzero.search``; ``attnzero.flops`` -> ``attnzero.flops``."""
    return '.'.join(name.split('.')[:2])


def _where(imp: Import, modules: Dict[str, Module], root: Path) -> str:
    p = modules[imp.src].path
    try:
        p = p.relative_to(root)
    except ValueError:
        pass
    kind = 'function-local ' if imp.local else ('type-only ' if imp.type_only else '')
    return f'{p}:{imp.line}: {imp.src} -> {kind}import of {imp.target}'


def check_layers(modules, imports, root: Path, package: str = PACKAGE, layers=LAYERS,
                 separate=SEPARATE, root_max_rank: int = ROOT_MAX_RANK) -> List[str]:
    errs: List[str] = []
    for name in sorted(modules):
        if name != package and layer_of(name, layers) is None:
            errs.append(f'{modules[name].path.relative_to(root)}: module {name} is in no layer '
                        f'(add it to LAYERS in tests/test_layers.py)')
    for imp in imports:
        if not imp.internal:
            continue
        dst = layer_of(imp.target, layers)
        if imp.target == package:
            if imp.src != package:
                errs.append(f'{_where(imp, modules, root)}: imports the package root (the facade); '
                            f'import from the defining module instead')
            continue
        if imp.src == package:
            if not imp.local and dst is not None and dst[0] > root_max_rank:
                errs.append(f'{_where(imp, modules, root)}: the package root imports layer '
                            f'{dst[0]} eagerly (at most {root_max_rank})')
            continue
        src = layer_of(imp.src, layers)
        if src is None or dst is None:
            continue  # reported above
        if dst[0] > src[0]:
            errs.append(f'{_where(imp, modules, root)}: upward import ({src[1]} is layer {src[0]}, '
                        f'{dst[1]} is layer {dst[0]})')
        for a, b in separate:
            if {src[1], dst[1]} == {a, b}:
                errs.append(f'{_where(imp, modules, root)}: {a} and {b} must not import each other')
    return errs


def strongly_connected(nodes: Iterable[str], edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Tarjan's algorithm (iterative); components in discovery order, members sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    on_stack: Set[str] = set()
    stack: List[str] = []
    comps: List[List[str]] = []
    counter = 0
    for start in sorted(nodes):
        if start in index:
            continue
        work: List[Tuple[str, Iterator[str]]] = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                comps.append(sorted(comp))
    return comps


def _shortest_cycle(start: str, members: Set[str], edges: Dict[str, Set[str]]) -> List[str]:
    """A shortest path ``start -> ... -> start`` inside ``members`` (breadth first)."""
    prev: Dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges.get(v, ())):
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start] + path[::-1][1:] + [start] if len(path) > 1 else [start, start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError('not a cycle')  # pragma: no cover


def check_cycles(modules, imports, root: Path) -> List[str]:
    """One message per strongly connected component (> 1 module, or a self-import), showing one
    shortest cycle through its first module with the import of each step."""
    edges: Dict[str, Set[str]] = {}
    lines: Dict[Tuple[str, str], Import] = {}
    for imp in imports:
        if imp.internal and imp.target in modules:
            edges.setdefault(imp.src, set()).add(imp.target)
            lines.setdefault((imp.src, imp.target), imp)
    errs = []
    for comp in strongly_connected(modules, edges):
        if len(comp) == 1 and comp[0] not in edges.get(comp[0], ()):
            continue
        cycle = _shortest_cycle(comp[0], set(comp), edges)
        steps = [lines[(a, b)] for a, b in zip(cycle, cycle[1:])]
        errs.append(f'import cycle between {", ".join(comp)}; e.g. '
                    f'{" -> ".join(cycle)}:\n' + '\n'.join('    ' + _where(i, modules, root)
                                                          for i in steps))
    return errs


def _allowed_third_party(name: str, allowed: Sequence[str]) -> bool:
    return any(name == a or name.startswith(a + '.') for a in allowed)


def check_local_imports(modules, imports, root: Path, allowed=OPTIONAL_LOCAL_IMPORTS) -> List[str]:
    errs = []
    for imp in imports:
        if not imp.local:
            continue
        if imp.internal:
            if subpackage(imp.target) != subpackage(imp.src) or imp.target == PACKAGE:
                errs.append(f'{_where(imp, modules, root)}: crosses a subpackage inside a function '
                            f'(import it at module level)')
        elif imp.target.split('.')[0] not in STDLIB and not _allowed_third_party(imp.target, allowed):
            errs.append(f'{_where(imp, modules, root)}: third-party import inside a function '
                        f'(import it at module level, or add it to OPTIONAL_LOCAL_IMPORTS if it is '
                        f'an optional/heavy dependency)')
    return errs


def check_tree(package_dir: Path, package: str = PACKAGE, **kw) -> Dict[str, List[str]]:
    """All violations of the tree at ``package_dir``, per check."""
    modules = discover(package_dir, package)
    imports = collect_imports(modules, package)
    root = package_dir.parent
    return dict(layers=check_layers(modules, imports, root, package, **kw),
                cycles=check_cycles(modules, imports, root),
                local=check_local_imports(modules, imports, root))


# ---- the tests on the real tree -------------------------------------------------------------
@pytest.fixture(scope='module')
def violations() -> Dict[str, List[str]]:
    return check_tree(PACKAGE_DIR)


def _report(errs: List[str]) -> str:
    return f'{len(errs)} violation(s):\n' + '\n'.join(errs)


def test_layers_are_one_way(violations):
    assert not violations['layers'], _report(violations['layers'])


def test_no_import_cycles(violations):
    assert not violations['cycles'], _report(violations['cycles'])


def test_function_local_imports(violations):
    assert not violations['local'], _report(violations['local'])


def test_graph_sanity():
    """The parser sees the tree: known edges of each kind are found and resolved."""
    modules = discover(PACKAGE_DIR)
    imports = collect_imports(modules)
    edges = {(i.src, i.target) for i in imports if i.internal}
    assert 'attnzero.space.genome' in modules and modules['attnzero.space'].is_package
    assert ('attnzero.attention', 'attnzero.attention.zoo') in edges        # from . import zoo
    assert ('attnzero.attention.linear', 'attnzero.space.ops') in edges      # from ..space.ops
    assert ('attnzero.search.runner', 'attnzero.search.evaluate') in edges   # from .evaluate
    assert all(i.target in modules for i in imports if i.internal), 'unresolved internal import'


# ---- self-tests: the checker fails when it should -------------------------------------------
def _write(root: Path, files: Dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding='utf-8')
    return root / PACKAGE


SYNTHETIC = {
    'attnzero/__init__.py': 'from . import models\nfrom .version import v\n',
    'attnzero/version.py': 'v = 1\n',
    # a package __init__ re-exporting its submodules: not a cycle
    'attnzero/space/__init__.py': 'from .genome import Genome\nfrom .cost import analyse\n',
    'attnzero/space/cost.py': 'import numpy\n',
    'attnzero/space/genome.py': 'from .cost import analyse\nfrom ..version import v\n'
                                'class Genome:\n    pass\n',
    'attnzero/attention/__init__.py': 'from attnzero.space import Genome\n',
    'attnzero/models/__init__.py': 'from ..attention import *\n',
    'attnzero/search/__init__.py': '',
    'attnzero/search/runner.py': 'from .report import x\ndef f():\n    from . import report\n'
                                 '    import matplotlib.pyplot\n    import json\n',
    'attnzero/search/report.py': 'x = 1\n',
    'attnzero/mm/__init__.py': 'def f():\n    import mmengine\n',
}


def test_checker_accepts_a_clean_tree(tmp_path):
    v = check_tree(_write(tmp_path, SYNTHETIC))
    assert v == dict(layers=[], cycles=[], local=[])


@pytest.mark.parametrize('case, files, check, expected', [
    ('upward', {'attnzero/space/cost.py': 'from attnzero.search import report\n'},
     'layers', ['attnzero/space/cost.py:1: attnzero.space.cost -> import of attnzero.search.report: '
                'upward import (attnzero.space is layer 1, attnzero.search is layer 4)']),
    ('upward, type-only', {'attnzero/space/cost.py': 'from typing import TYPE_CHECKING\n'
                           'if TYPE_CHECKING:\n    from ..search.report import x\n'},
     'layers', ['attnzero/space/cost.py:3: attnzero.space.cost -> type-only import of '
                'attnzero.search.report: upward import (attnzero.space is layer 1, attnzero.search '
                'is layer 4)']),
    ('siblings', {'attnzero/mm/__init__.py': 'import attnzero.search.report\n'},
     'layers', ['attnzero/mm/__init__.py:1: attnzero.mm -> import of attnzero.search.report: '
                'attnzero.search and attnzero.mm must not import each other']),
    ('no layer', {'attnzero/misc.py': ''},
     'layers', ['attnzero/misc.py: module attnzero.misc is in no layer (add it to LAYERS in '
                'tests/test_layers.py)']),
    ('root too high', {'attnzero/__init__.py': 'from . import search\n'},
     'layers', ['attnzero/__init__.py:1: attnzero -> import of attnzero.search: the package root '
                'imports layer 4 eagerly (at most 3)']),
    ('via the facade', {'attnzero/search/report.py': 'from attnzero import v\n'},
     'layers', ['attnzero/search/report.py:1: attnzero.search.report -> import of attnzero: '
                'imports the package root (the facade); import from the defining module instead']),
    ('cycle via a local import', {'attnzero/space/cost.py': 'def f():\n    from .genome import G\n'},
     'cycles', ['import cycle between attnzero.space.cost, attnzero.space.genome; e.g. '
                'attnzero.space.cost -> attnzero.space.genome -> attnzero.space.cost:\n'
                '    attnzero/space/cost.py:2: attnzero.space.cost -> function-local import of '
                'attnzero.space.genome\n'
                '    attnzero/space/genome.py:1: attnzero.space.genome -> import of '
                'attnzero.space.cost']),
    ('submodule imports its package', {'attnzero/space/cost.py': 'from attnzero.space import Genome\n'},
     'cycles', ['import cycle between attnzero.space, attnzero.space.cost, attnzero.space.genome; '
                'e.g. '
                'attnzero.space -> attnzero.space.cost -> attnzero.space:\n'
                '    attnzero/space/__init__.py:2: attnzero.space -> import of attnzero.space.cost\n'
                '    attnzero/space/cost.py:1: attnzero.space.cost -> import of attnzero.space']),
    ('local, crossing', {'attnzero/search/report.py': 'def f():\n    from attnzero.space import G\n'},
     'local', ['attnzero/search/report.py:2: attnzero.search.report -> function-local import of '
               'attnzero.space: crosses a subpackage inside a function (import it at module level)']),
    ('local, third party', {'attnzero/space/cost.py': 'def f():\n    import numpy\n'},
     'local', ['attnzero/space/cost.py:2: attnzero.space.cost -> function-local import of numpy: '
               'third-party import inside a function (import it at module level, or add it to '
               'OPTIONAL_LOCAL_IMPORTS if it is an optional/heavy dependency)']),
])
def test_checker_reports(tmp_path, case, files, check, expected):
    v = check_tree(_write(tmp_path, {**SYNTHETIC, **files}))
    assert v[check] == expected, case
    assert all(not errs for name, errs in v.items() if name != check), v


def test_checker_on_a_copy_of_the_tree(tmp_path):
    """The real tree plus one upward import (the space importing the search) and one cycle."""
    copy = tmp_path / PACKAGE
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns('__pycache__', '*.json',
                                                                      '*.jsonl', '*.md'))
    before = check_tree(copy)
    with open(copy / 'space' / 'ops.py', 'a', encoding='utf-8') as f:
        f.write('\nfrom attnzero.search import config  # noqa\n')
    with open(copy / 'search' / 'config.py', 'a', encoding='utf-8') as f:
        f.write('\nfrom . import runner  # noqa\n')
    after = check_tree(copy)
    new_layers = [e for e in after['layers'] if e not in before['layers']]
    assert any(e.startswith('attnzero/space/ops.py:') and 'attnzero.space.ops -> import of '
               'attnzero.search.config: upward import (attnzero.space is layer 1, attnzero.search '
               'is layer 4)' in e for e in new_layers), new_layers
    new_cycles = [e for e in after['cycles'] if e not in before['cycles']]
    assert any('attnzero.search.config' in e and 'attnzero.search.runner' in e for e in new_cycles), \
        after['cycles']
