"""The HTTP API's clients: their part of ``bot.yml`` (``api: {clients: [...]}``) and the
client as the rest of the bot knows it once its key is read from the environment.

Pure domain code, like the rest of the config model (bot.core.config includes this section).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: What ``requesters`` may list: ``any``, Slack user ids (U…, W…) and user group ids (S…).
REQUESTER_ENTRY: Final = r"^(any|[UW][A-Z0-9]{2,}|S[A-Z0-9]{2,})$"
#: A client's name: shown on cards, in the audit, and read by policy conditions (client.name).
CLIENT_NAME: Final = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
#: The environment variable holding a client's key.
ENV_NAME: Final = r"^[A-Z_][A-Z0-9_]{0,127}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiClientConfig(_Section):
    """One program allowed to ask for approvals over HTTP."""

    name: str = Field(pattern=CLIENT_NAME)
    key_env: str = Field(pattern=ENV_NAME)
    requesters: list[Annotated[str, Field(pattern=REQUESTER_ENTRY)]] = Field(min_length=1)


class ApiConfig(_Section):
    """``api:``: the HTTP API's clients (none: the API answers 401 to everyone)."""

    clients: list[ApiClientConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> ApiConfig:
        for attribute in ("name", "key_env"):
            values = [getattr(client, attribute) for client in self.clients]
            twice = sorted({value for value in values if values.count(value) > 1})
            if twice:
                raise ValueError(
                    f"two clients have the {attribute} {', '.join(twice)}; fix: give each "
                    f"client its own {attribute}"
                )
        return self


@dataclass(frozen=True)
class ApiClient:
    """A client of the HTTP API with its key (never shown: ``repr`` leaves it out)."""

    name: str
    key: str = field(repr=False)
    requesters: tuple[str, ...] = ()

    def may_ask_for(self, user_id: str, usergroups: Iterable[str]) -> bool:
        """Whether the client may ask on behalf of ``user_id`` (a member of ``usergroups``)."""
        allowed = set(self.requesters)
        return "any" in allowed or user_id in allowed or bool(allowed & set(usergroups))

    @property
    def names_usergroups(self) -> bool:
        return any(entry.startswith("S") for entry in self.requesters)
