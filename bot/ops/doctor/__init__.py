"""``approval-bot doctor``: checks, online, everything the bot depends on.

Slack (the token, its workspace and scopes, the approvals channels, user groups and people
the config names, the signing secret, Socket Mode's app token), Mistral (the key, the model
or agent, each connector and which of its tools the policy holds), the MCP servers and the
local functions, and Redis (reachable, persistence, ``maxmemory-policy``, version).

Each check is a :class:`~bot.ops.doctor.report.Check`: ``ok``, ``warning`` or ``failed``, with
what was found and, unless ok, the fix. ``serve``, ``socket`` and ``worker`` run the fast
subset once at start-up (:mod:`bot.ops.doctor.preflight`). This package reads the config and the
settings and talks to the services through their clients; nothing else imports it but the
commands and the composition root.
"""

from bot.ops.doctor.report import Check, Report, render_json, render_table
from bot.ops.doctor.run import run_doctor

__all__ = ["Check", "Report", "render_json", "render_table", "run_doctor"]
