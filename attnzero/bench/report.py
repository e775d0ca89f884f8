"""The report of any bench: :mod:`attnzero.bench.analyze` for a single-fidelity bench (format 1),
:mod:`attnzero.bench.levels_report` for a multi-fidelity one (format 2). What
``tools/analyze_bench.py`` writes and what the tests regenerate."""
from __future__ import annotations

from . import analyze, levels_report

__all__ = ['report_text', 'write_report']


def report_text(bench, bench_label: str) -> str:
    """The report of ``bench`` as text (plots linked, not drawn)."""
    if bench.rungs:
        return levels_report.levels_report_text(bench, bench_label)
    return analyze.report_text(bench, bench_label)


def write_report(bench, out_dir: str, bench_label: str, plots: bool = True,
                 report_name: str = 'REPORT.md') -> str:
    """Write the report of ``bench`` (and its plots) into ``out_dir``; returns its path."""
    if bench.rungs:
        return levels_report.write_levels_report(bench, out_dir, bench_label, plots=plots,
                                                 report_name=report_name)
    return analyze.write_report(bench, out_dir, bench_label, plots=plots, report_name=report_name)
