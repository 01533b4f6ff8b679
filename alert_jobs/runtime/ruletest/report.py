"""What ``alert-jobs rules test`` prints: one line per file, and for each test that
failed, each difference as expected-vs-got with the simulated time and the line of the
test file that expected it (the format people know from ``promtool test rules``)."""

from __future__ import annotations

from alert_jobs.runtime.ruletest.harness import CaseResult, FileResult
from alert_jobs.runtime.ruletest.spec import offset_text


def format_result(result: FileResult, *, verbose: bool = False) -> str:
    """The report of one file; ``verbose`` also lists passing tests and what each sent."""
    name = str(result.test_file.path)
    cases = result.cases
    failed = [c for c in cases if not c.passed]
    head = (f"{name}: {len(cases)} test{'s' if len(cases) != 1 else ''}, "
            f"{len(cases) - len(failed)} passed"
            + (f", {len(failed)} FAILED" if failed else "")
            + f" ({result.seconds:.1f} s)")
    lines = [head]
    for case in cases:
        if case.passed and not verbose:
            continue
        lines += _case(name, case, verbose=verbose)
    return "\n".join(lines)


def _case(file: str, result: CaseResult, *, verbose: bool) -> list[str]:
    case = result.case
    where = f"{file}:{case.line}" if case.line else file
    status = "ok  " if result.passed else "FAIL"
    lines = [f"  {status} {case.name} ({where}; {result.evaluations} evaluations, "
             f"{len(result.sent)} notifications)"]
    for miss in result.mismatches:
        at = f"{file}:{miss.line}" if miss.line else file
        lines.append(f"       {miss.what} ({at})")
        lines += _side("expected", miss.expected)
        lines += _side("got", miss.got)
    if verbose or not result.passed:
        if result.sent:
            lines.append("       sent:")
            lines += [f"         {s.describe(summary=True)}" for s in result.sent]
        if result.mismatches:
            start = case.start
            lines.append(f"       (the test starts at {start:%Y-%m-%d %H:%M} UTC and "
                         f"evaluates every {offset_text(case.interval)})")
    return lines


def _side(label: str, items: list[str] | tuple[str, ...] | object) -> list[str]:
    entries = list(items) if isinstance(items, list | tuple) else [str(items)]
    first, *rest = entries or ["(nothing)"]
    head = f"{label}:".ljust(10)
    return [f"         {head}{first}"] + [f"         {' ' * 10}{e}" for e in rest]
