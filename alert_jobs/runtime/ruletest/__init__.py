"""``alert-jobs rules test``: rules run on synthetic inputs and a simulated clock
(``docs/rule-tests.md``).

:mod:`~alert_jobs.runtime.ruletest.spec` reads a test file, :mod:`.harness` runs it
through the real path on a private timeline, :mod:`.report` says what differed.
"""

from alert_jobs.runtime.ruletest.harness import CaseResult, FileResult, run_file
from alert_jobs.runtime.ruletest.report import format_result
from alert_jobs.runtime.ruletest.spec import TestFileError

__all__ = ["CaseResult", "FileResult", "TestFileError", "format_result", "run_file"]
