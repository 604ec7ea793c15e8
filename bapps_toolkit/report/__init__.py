"""Reports of an evaluation: Table-5-style Markdown / LaTeX / JSON (:mod:`.tables`), figures
(:mod:`.plots`, needs the ``plot`` extra; matplotlib is imported only when a figure is drawn), and
an evaluation written to all its files in one call (:mod:`.outputs`)."""
from .outputs import ReportFiles, evaluate_to_reports
from .tables import to_json, to_latex, to_markdown, write_csv, write_reports

__all__ = ["to_markdown", "to_latex", "to_json", "write_csv", "write_reports", "ReportFiles", "evaluate_to_reports"]
