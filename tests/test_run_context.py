"""The Mistral SDK's private parts the bot relies on (bot.run_context), checked against the
installed SDK: an upgrade that changes them fails here, loudly, before it fails a run."""

from __future__ import annotations

import inspect

from mistralai.extra.run.context import RunContext
from mistralai.extra.run.tools import RunCoroutine

from bot.mistral.run_context import BotRunContext, check_sdk


def test_the_installed_sdk_has_what_the_bot_writes() -> None:
    check_sdk()  # raises ConfigError on an SDK without them
    probe = RunContext(model="m")
    assert isinstance(probe._callable_tools, dict)
    assert isinstance(probe._tool_configurations, dict)
    # register_func writes exactly these two, in this shape
    source = inspect.getsource(RunContext.register_func)
    assert "self._callable_tools[" in source and "self._tool_configurations[" in source
    assert '"requires_confirmation"' in source
    assert {"name", "awaitable", "tool"} <= set(inspect.signature(RunCoroutine).parameters)
    # and the run loop reads them through these methods, which BotRunContext builds on
    assert "execute_function_calls" in vars(RunContext)
    assert "requires_confirmation" in vars(RunContext)
    assert issubclass(BotRunContext, RunContext)
