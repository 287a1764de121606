"""The domain core (the approval lifecycle, the policy, its conditions, editing) imports
nothing of Slack, HTTP, Redis or the Mistral SDK: checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.processes import ROOT

CORE = (
    "bot.core.api_config",
    "bot.core.approval",
    "bot.core.policy",
    "bot.core.conditions",
    "bot.core.editing",
    "bot.core.arguments",
)
FORBIDDEN = ("mistralai", "slack_sdk", "slack_bolt", "redis", "aiohttp", "httpx", "httpx2", "mcp")


def test_the_core_imports_no_adapter() -> None:
    script = (
        "import json, sys\n"
        f"for name in {CORE!r}: __import__(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = json.loads(done.stdout)
    leaked = sorted(name for name in loaded if name.split(".")[0] in FORBIDDEN)
    assert leaked == [], f"the core pulled in {leaked[:10]}"


def test_the_client_loads_nothing_of_the_bots_server_side() -> None:
    """bot.client runs inside other programs: the SDK and httpx2, nothing else of ours."""
    script = "import json, sys\nimport bot.client\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = json.loads(done.stdout)
    ours = sorted(name for name in loaded if name.split(".")[0] == "bot")
    assert ours == ["bot", "bot.client", "bot.client.approvals", "bot.client.errors",
                    "bot.client.webhooks", "bot.errors"]  # fmt: skip
    server = ("slack_sdk", "slack_bolt", "redis", "aiohttp", "cel_expr_python", "prometheus_client")
    assert sorted(name for name in loaded if name.split(".")[0] in server) == []
