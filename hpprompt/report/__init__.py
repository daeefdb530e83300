"""Run reports: reading run directories, tables with mean ± s.e. over seeds, matplotlib figures.

Floor 2: imports training only (run directories are read, never run).
"""
from hpprompt.report.report import update_readme
from hpprompt.report.report import write_report
from hpprompt.report.runs import NotARunError
from hpprompt.report.runs import RunData
from hpprompt.report.runs import load_run

__all__ = ("NotARunError", "RunData", "load_run", "update_readme", "write_report")
