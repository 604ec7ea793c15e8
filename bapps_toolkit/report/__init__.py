"""Reports of an evaluation: Table-5-style Markdown / LaTeX / JSON (:mod:`.tables`) and figures
(:mod:`.plots`, needs the ``plot`` extra; imported only when used)."""
from .tables import to_json, to_latex, to_markdown, write_csv, write_reports

__all__ = ["to_markdown", "to_latex", "to_json", "write_csv", "write_reports"]
