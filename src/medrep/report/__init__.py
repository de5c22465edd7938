"""One self-contained HTML report assembled from result objects (no analysis code in templates)."""
from medrep.report.html import Figure, Section, Table, render_report, write_report

__all__ = ["Figure", "Section", "Table", "render_report", "write_report"]
