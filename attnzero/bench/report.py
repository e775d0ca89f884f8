"""The report of any bench: :mod:`attnzero.bench.analyze` for a single-fidelity bench (format 1),
:mod:`attnzero.bench.levels_report` for a multi-fidelity one (format 2). What
``tools/analyze_bench.py`` writes and what the tests regenerate."""
from __future__ import annotations

import os

from . import analyze, levels_report

__all__ = ['report_text', 'write_report']


def report_text(bench, bench_label: str) -> str:
    """The report of ``bench`` as text (plots linked, not drawn)."""
    if bench.rungs:
        return levels_report.levels_report_text(bench, bench_label)
    return analyze.report_text(bench, bench_label)


def write_report(bench, out_dir: str, bench_label: str, plots: bool = True,
                 report_name: str = 'REPORT.md') -> str:
    """Analyse ``bench`` once, write its plots (unless ``plots=False``) and its report into
    ``out_dir``; returns the report's path."""
    os.makedirs(out_dir, exist_ok=True)
    if bench.rungs:
        res = levels_report.analyse_levels(bench)
        if plots:
            levels_report.make_levels_plots(bench, res, out_dir)
        text = levels_report.levels_report_text(bench, bench_label, res)
    else:
        res = analyze.analyse(bench)
        if plots:
            analyze.make_plots(bench, res, out_dir)
        text = analyze.report_text(bench, bench_label, res)
    path = os.path.join(out_dir, report_name)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path
