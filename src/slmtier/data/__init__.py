"""Load and validate task data: every problem is reported with file:line before any training starts."""

from slmtier.data.checks import report_long_inputs
from slmtier.data.examples import Example, Splits
from slmtier.data.files import resolve_data_path
from slmtier.data.loading import load_splits

__all__ = ["Example", "Splits", "load_splits", "report_long_inputs", "resolve_data_path"]
