"""The benchmark's report: tables and figures from the evaluated and trained runs.

``write_report(params, results_dir)`` reads every run named by params.yaml's ``compare``
and ``ablation`` sections from ``results_dir`` (``metrics/<run>/`` and ``train/<run>/``) and
writes, into ``results_dir/tables`` and ``results_dir/figures``:

- ``methods_<dataset>`` (.md/.tex/.csv): the paper's Table 1 layout with 95% CIs over seeds
  and images and a ``published`` column filled only from cited published.yaml entries;
- ``ablation_<study>``: studies derived from the variants' config deltas, with paired
  Wilcoxon tests against the full model and Holm-adjusted p-values;
- ``cost``: parameters, GMACs, latency, training time;
- figures (PNG + PDF, byte-deterministic): metric vs hole ratio, metric vs IterNum,
  qualitative examples, RFR-Net's hole shrinking across recurrences, training curves.

Modules: ``settings`` (params), ``inputs`` (run files), ``published``, ``studies``,
``stats`` (bootstrap, Wilcoxon, Holm), ``summaries`` (table cells), ``methods``,
``ablation``, ``cost`` (table builders), ``tables`` (writers), ``grid`` (the
evaluations' example tiles), ``figures`` and ``build`` (the entry point).
"""

from rfr.report.build import ReportResult, write_report
from rfr.report.errors import ReportError

__all__ = ["ReportError", "ReportResult", "write_report"]
