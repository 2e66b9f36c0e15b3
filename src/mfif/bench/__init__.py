"""Benchmarking fusion methods on folders of cases: ``mfif bench``.

:mod:`~mfif.bench.cases` reads data sets from folders (with optional ground truth);
:mod:`~mfif.bench.run` fuses every case with every method, times it, measures its memory and
scores it, and writes ``results.csv``, ``summary.csv`` and ``run.json``. The project's own
benchmark (the paper-shaped sets, Table 2, the Markdown report and plots) lives in the
repository's ``benchmarks/paperbench.py`` and builds on these.
"""
from __future__ import annotations

from .cases import CaseData, CaseSpec, Dataset, load_case, resolve_datasets, scan_folder
from .run import CSV_COLUMNS, SUMMARY_COLUMNS, BenchResult, read_results, run_bench, summarize, summary_table, write_results

__all__ = ["CaseSpec", "CaseData", "Dataset", "scan_folder", "resolve_datasets", "load_case", "CSV_COLUMNS",
           "SUMMARY_COLUMNS", "BenchResult", "run_bench", "read_results", "summarize", "write_results",
           "summary_table"]
