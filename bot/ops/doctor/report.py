"""A check's result, and how ``doctor`` prints them: a table for people, JSON for tools."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["ok", "warning", "failed"]


@dataclass(frozen=True)
class Check:
    """One thing checked: its name (``slack.token``, ``redis.version``…), the outcome, what
    was found, and the fix (empty when ok)."""

    check: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def ok(check: str, detail: str) -> Check:
    return Check(check, "ok", detail)


def warning(check: str, detail: str, fix: str) -> Check:
    return Check(check, "warning", detail, fix)


def failed(check: str, detail: str, fix: str) -> Check:
    return Check(check, "failed", detail, fix)


def from_problem(check: str, problem: str) -> Check:
    """A failed check from a ConfigError problem (``field (line N): what; fix: how``)."""
    detail, _, fix = problem.partition("; fix: ")
    return failed(check, detail, fix or "see bot.example.yml")


@dataclass(frozen=True)
class Report:
    """The checks of one run, and what they add up to."""

    checks: tuple[Check, ...]

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.status == "failed"]

    @property
    def warnings(self) -> list[Check]:
        return [check for check in self.checks if check.status == "warning"]

    @property
    def status(self) -> Status:
        return "failed" if self.failed else "warning" if self.warnings else "ok"

    @property
    def exit_code(self) -> int:
        """0 when nothing failed (warnings allowed), 1 otherwise."""
        return 1 if self.failed else 0

    def summary(self) -> str:
        counts = {s: sum(1 for c in self.checks if c.status == s) for s in ("ok", "warning")}
        return (
            f"{len(self.checks)} checks: {counts['ok']} ok, {counts['warning']} warning(s), "
            f"{len(self.failed)} failed"
        )


def render_table(report: Report) -> str:
    """The checks as a table (status, check, detail), each fix on a line under its detail."""
    name_width = max([len("check"), *(len(c.check) for c in report.checks)])
    indent = " " * (9 + name_width + 2)
    lines = [f"{'status':<9}{'check':<{name_width}}  detail"]
    for check in report.checks:
        lines.append(f"{check.status:<9}{check.check:<{name_width}}  {check.detail}")
        if check.fix:
            lines.append(f"{indent}fix: {check.fix}")
    lines.append("")
    lines.append(report.summary())
    return "\n".join(lines)


def render_json(checks: Sequence[Check]) -> str:
    """The checks as a JSON list of ``{"check", "status", "detail", "fix"}``."""
    return json.dumps([check.to_dict() for check in checks], indent=2)
