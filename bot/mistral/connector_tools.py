"""Which tools each Mistral connector has, as the API lists them.

A connector's tool names are not in the config, yet a policy rule may name them by glob
(``gmail_*``). ``requires_confirmation`` takes exact names only, so the bot asks the API for
each connector's tools (``GET /v1/connectors/{connector_id_or_name}/tools``) and holds every
listed name the policy would hold. Lists are refreshed every ``refresh_s`` and whenever the
admins' overrides change. A connector whose tools cannot be listed is **not offered to the
model** (fail closed): offered without its list, a call the policy would hold could run
unasked. Why a connector is left out is logged and shown on ``/readyz``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import httpx2
from mistralai.client import Mistral
from mistralai.client.errors import MistralError

logger = logging.getLogger(__name__)

#: How long a connector's tool list is trusted before it is asked for again.
REFRESH_S = 300.0


class ConnectorTools:
    """Each connector's tool names, fetched when stale; ``problems``: connectors left out."""

    def __init__(
        self,
        client: Mistral,
        connector_ids: Sequence[str],
        *,
        refresh_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.connector_ids = tuple(connector_ids)
        self.refresh_s = refresh_s
        self.clock = clock
        self._names: dict[str, tuple[str, ...]] = {}
        self._fetched_at: dict[str, float] = {}
        self._overrides: Hashable = None
        #: connector -> why it is not offered to the model (its tools could not be listed)
        self.problems: dict[str, str] = {}

    async def listed(self, overrides: Hashable = None) -> dict[str, tuple[str, ...]]:
        """The tools of every connector that could be listed; ``overrides``: the admins'
        overrides in force (a change makes every list be fetched again)."""
        changed = overrides != self._overrides
        self._overrides = overrides
        now = self.clock()
        for connector in self.connector_ids:
            stale = now - self._fetched_at.get(connector, float("-inf")) >= self.refresh_s
            if changed or stale or connector not in self._names:
                await self._fetch(connector, now)
        return {c: self._names[c] for c in self.connector_ids if c in self._names}

    async def _fetch(self, connector: str, now: float) -> None:
        try:
            response: Any = await self.client.beta.connectors.list_tools_async(
                connector_id_or_name=connector
            )
        except (MistralError, httpx2.HTTPError, ValueError) as error:
            reason = f"its tools could not be listed ({_short(error)})"
            if self.problems.get(connector) != reason:
                logger.error(
                    "connector %s is not offered to the model: %s; the policy could not "
                    "hold its calls",
                    connector,
                    reason,
                )
            self.problems[connector] = reason
            # a list fetched before is not trusted either: the connector may have changed
            self._names.pop(connector, None)
            self._fetched_at.pop(connector, None)
            return
        names = tuple(sorted({_name(tool) for tool in response or []} - {""}))
        if connector in self.problems:
            logger.info("connector %s: its tools are listed again; offered to the model", connector)
        self.problems.pop(connector, None)
        self._names[connector] = names
        self._fetched_at[connector] = now


def _name(tool: Any) -> str:
    name = tool.get("name") if isinstance(tool, dict) else getattr(tool, "name", None)
    return name if isinstance(name, str) else ""


def _short(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 200 else text[:200] + "…"
