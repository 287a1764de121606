"""A small MCP server (stdio) for the tests: an order desk with a read and a write tool.

Each executed call is appended as a JSON line to the file named by ``MCP_CALLS_FILE``, so a
test can count how many times a tool really ran in this separate process.
"""

from __future__ import annotations

import json
import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("order-desk")


def _record(tool: str, arguments: dict[str, object]) -> None:
    path = os.environ.get("MCP_CALLS_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as calls:
            calls.write(json.dumps({"tool": tool, "arguments": arguments}) + "\n")


@server.tool()
def lookup_order(order_id: str) -> str:
    """Look up an order's status."""
    _record("lookup_order", {"order_id": order_id})
    return f"Order {order_id}: shipped"


@server.tool()
def refund_order(order_id: str, amount: float) -> str:
    """Refund an order."""
    _record("refund_order", {"order_id": order_id, "amount": amount})
    return f"Refunded {amount:g} EUR on order {order_id}"


if __name__ == "__main__":
    if pid_file := os.environ.get("MCP_PID_FILE"):
        with open(pid_file, "w", encoding="utf-8") as pid:
            pid.write(str(os.getpid()))
    server.run("stdio")
