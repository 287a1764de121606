"""Settings from the environment (and an optional ``.env`` file), built once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError
from bot.logs import LogFormat

Mode = Literal["serve", "socket", "worker", "check"]

#: What each mode cannot run without.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "serve": ("slack_bot_token", "slack_signing_secret", "mistral_api_key"),
    "worker": ("slack_bot_token", "mistral_api_key"),
    "socket": ("slack_bot_token", "slack_app_token", "mistral_api_key"),
    "check": (),
}


class Settings(BaseSettings):
    """Everything the bot reads from its environment. Field names map to upper-case variables."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    slack_bot_token: str | None = Field(
        default=None, description="the bot token (xoxb-…) from the app's OAuth & Permissions page"
    )
    slack_signing_secret: str | None = Field(
        default=None,
        description="the signing secret from the app's Basic Information page, "
        "to verify that requests come from Slack",
    )
    slack_app_token: str | None = Field(
        default=None,
        description="an app-level token (xapp-…) with connections:write, for Socket Mode",
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/",
        description="the Slack Web API base URL (GovSlack, a proxy, or a test server)",
    )
    mistral_api_key: str | None = Field(default=None, description="the Mistral API key")
    mistral_server_url: str | None = Field(
        default=None, description="the Mistral API base URL; Mistral's own when unset"
    )
    mistral_timeout_ms: int = Field(
        default=120_000, gt=0, description="how long one Mistral request may take"
    )
    mistral_retry_for_ms: int = Field(
        default=20_000,
        ge=0,
        description="how long to retry a Mistral request that failed with 429, 5xx or a "
        "dropped connection (exponential backoff); 0 turns retries off",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://… of the Redis server; unset starts an embedded one (one instance)",
    )
    redis_max_connections: int = Field(
        default=50,
        ge=4,
        description="Redis connections one process may open; a request that finds none free "
        "waits up to 5 s for one",
    )
    data_dir: Path = Field(
        default=Path(".data"), description="where the embedded Redis keeps its data"
    )
    bot_config: Path = Field(default=Path("bot.yml"), description="path of the config file")
    port: int = Field(default=3000, gt=0, lt=65536, description="HTTP port of `serve`")
    worker_concurrency: int = Field(
        default=16, gt=0, description="conversations the process runs at once"
    )
    run_jobs: bool = Field(
        default=True,
        description="whether `serve` also runs the queued work (conversations, resumes) and "
        "the sweeps; false leaves it to `approval-bot worker` processes, so that the process "
        "answering Slack does nothing else",
    )
    job_lease_s: int = Field(
        default=30,
        ge=5,
        description="how long a job (a resume, a thread's messages) stays with a process that "
        "stopped answering before another process takes it over",
    )
    sweep_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="how often to look for requests to expire, reminders due and cards to post",
    )
    shutdown_grace_s: float = Field(
        default=30.0,
        ge=0,
        description="at shutdown, how long jobs in flight may finish before they are handed "
        "back to the other processes",
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_format: LogFormat = Field(
        default="json",
        description="json (one JSON object per line, for log collectors) or text (for people)",
    )
    audit_retention_days: int = Field(
        default=365, gt=0, description="how long the audit trail in Redis keeps entries"
    )

    def require(self, mode: Mode) -> None:
        """Raise one ConfigError listing every variable ``mode`` needs and lacks."""
        missing = [name for name in _REQUIRED[mode] if not getattr(self, name)]
        if missing:
            problems = [
                f"{name.upper()} is not set: {type(self).model_fields[name].description}"
                for name in missing
            ]
            problems.append("Set them in the environment or in .env (see .env.example).")
            raise ConfigError("the environment", problems)

    @property
    def secrets(self) -> list[str]:
        """The values no log line may show."""
        given = (
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.mistral_api_key,
        )
        return [value for value in given if value]


def load_settings(mode: Mode, env_file: Path | None = Path(".env")) -> Settings:
    """Read the environment; raise ConfigError naming every wrong or missing variable."""
    try:
        settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']} (got {e.get('input')!r})"
            for e in error.errors()
        ]
        raise ConfigError("the environment", problems) from error
    settings.require(mode)
    return settings
