"""The packages import one way only, as the README's architecture section draws it:
ops -> slack -> flow -> (storage, mistral) -> core. Read from the sources themselves."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parent.parent / "bot"

#: package -> the bot packages its modules may import (``errors``, ``logs`` and ``metrics``
#: are shared by all)
ALLOWED = {
    "core": {"core"},
    "storage": {"core", "storage"},
    "mistral": {"core", "mistral"},
    "flow": {"core", "storage", "mistral", "flow"},
    # the Slack side talks to the flow, never to the stores (one shared helper excepted:
    # the round-trip counter a listener stops at its ack)
    "slack": {"core", "flow", "slack", "storage.connections"},
    # the HTTP API is a surface like Slack's: it talks to the flow, never to the stores
    "api": {"core", "flow", "api"},
    # the Python client runs in other programs: nothing of the bot's server side
    "client": {"client"},
}
SHARED = {"errors", "logs", "metrics"}


def imported(path: Path) -> set[str]:
    """The ``bot.*`` modules a file imports, without the ``bot.`` prefix."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "bot":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("bot."):
                found.add(node.module.removeprefix("bot."))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("bot.") for a in node.names if a.name.startswith("bot.")}
    return found


def test_packages_import_one_way() -> None:
    wrong: list[str] = []
    for package, allowed in ALLOWED.items():
        for path in sorted((BOT / package).rglob("*.py")):
            for module in imported(path):
                top = module.split(".")[0]
                if top in SHARED or top in allowed or module in allowed:
                    continue
                wrong.append(f"{path.relative_to(BOT.parent)} imports bot.{module}")
    assert wrong == []


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(BOT.parent)): n
        for path in BOT.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 500
    }
    assert long == {}


def test_only_storage_and_ops_import_redis() -> None:
    """The flow, the Slack side, the Mistral side and the core know Redis only through
    bot.storage (its failures as ``STORAGE_ERRORS``); ops wires it and the doctor checks it."""
    wrong: list[str] = []
    for package in ("core", "mistral", "flow", "slack"):
        for path in sorted((BOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                if any(name == "redis" or name.startswith("redis.") for name in names):
                    wrong.append(str(path.relative_to(BOT.parent)))
    assert wrong == []


def test_the_benchmark_imports() -> None:
    """bench/ reuses the tests' stand-ins and helpers: a move among them must not break it."""
    import importlib

    for module in ("bench.measure", "bench.stack", "bench.load", "bench.floor", "bench.report"):
        importlib.import_module(module)
