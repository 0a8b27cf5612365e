"""The one exception a user sees from the report.

Everything the report cannot do because of its inputs (a run that was never produced, a
malformed published.yaml, inconsistent parameters) is a `ReportError` whose message names
the file or key and says what to do, so the CLI can print it without a traceback.
"""

from __future__ import annotations

from rfr.errors import ReportError  # defined with the suite's other user errors

__all__ = ["ReportError"]
