"""The Mistral side: running a thread's conversation (``runner``), the SDK's RunContext as the
bot uses it (``run_context``: the one module touching the SDK's private parts), local tools
and their at-most-once guard (``tools``), MCP servers, connectors and built-ins
(``mcp_servers``, ``server_tools``, ``connector_tools``), and the SDK's deferral turned into a
request and back (``deferral``).

Imports the core (and ``bot.metrics``); never Slack, Redis, the flow or ops: the ledger it
writes approved calls' results to is a protocol the store implements.
"""
