"""Reports rebuilt from a run directory's files alone (config.yaml, metrics.json, predictions/)."""

from slmtier.report.render import complete_reports, load_run, render_html, render_markdown, write_reports

__all__ = ["complete_reports", "load_run", "render_html", "render_markdown", "write_reports"]
