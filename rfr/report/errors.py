"""The one exception a user sees from the report.

Everything the report cannot do because of its inputs (a run that was never produced, a
malformed published.yaml, inconsistent parameters) is a `ReportError` whose message names
the file or key and says what to do, so the CLI can print it without a traceback.
"""

from __future__ import annotations


class ReportError(ValueError):
    """A user-fixable problem with the report's inputs; the message names the file."""


__all__ = ["ReportError"]
