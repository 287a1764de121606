"""``bot.yml``'s ``assistant`` section: how the bot shows itself as a Slack AI app (the
status, the run's steps as tasks of a streamed reply, suggested prompts, approvals in the
requester's thread). Part of the config model (bot.core.config); pure."""

from __future__ import annotations

import fnmatch
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SuggestedPrompt(_Section):
    """A prompt Slack offers when someone opens a thread with the bot."""

    title: str = Field(min_length=1, max_length=75, description="what the button says")
    message: str = Field(min_length=1, max_length=2000, description="what it sends")


class AssistantConfig(_Section):
    """How the bot shows itself as a Slack AI app: status, streamed steps, prompts."""

    #: where the thread shows Slack's status, streamed steps and answer instead of the
    #: placeholder messages: the assistant threads Slack opens (the AI side panel), every
    #: thread (channels too), or nowhere
    native: Literal["assistant_threads", "everywhere", "off"] = "assistant_threads"
    #: ``plan``: every step of an answer together; ``timeline``: steps among the text
    task_display: Literal["plan", "timeline"] = "plan"
    #: Approve / Deny in the requester's thread too (decided through the same checks as
    #: the card's): where the requester may decide a call themselves, always, or never
    thread_approvals: Literal["when_requester_decides", "always", "never"] = (
        "when_requester_decides"
    )
    prompts_title: str = Field(default="Try asking", min_length=1, max_length=75)
    suggested_prompts: list[SuggestedPrompt] = Field(default_factory=list, max_length=4)
    #: what the thread's status says while a tool runs, by tool name or glob (the first
    #: that matches), e.g. ``get_weather: is checking the weather…``; other tools: "is
    #: running <tool>…"
    statuses: dict[
        Annotated[str, Field(min_length=1, max_length=200)],
        Annotated[str, Field(min_length=1, max_length=100)],
    ] = Field(default_factory=dict, max_length=200)

    def running(self, tool: str) -> str:
        """The status while ``tool`` runs."""
        for pattern, status in self.statuses.items():
            if fnmatch.fnmatchcase(tool, pattern):
                return status
        return f"is running {tool[:60]}…"
