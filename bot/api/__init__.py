"""The HTTP API for agents that do not live in Slack (``/api/v1/…``): its aiohttp handlers,
the problems they answer (RFC 9457), the parsing of bodies and the OpenAPI document.

Owns no state: the handlers talk to the flow (``bot.flow.api_approvals``), never to a
store. May import bot.core, bot.flow and the shared modules; bot.ops mounts it.
"""
