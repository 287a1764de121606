"""Settings from the environment (and an optional ``.env`` file), built once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.core.api_config import ApiClient
from bot.core.config import BotConfig, describe, read_yaml
from bot.errors import ConfigError
from bot.logs import LogFormat

Mode = Literal["serve", "socket", "worker", "check"]

#: URL schemes redis-py opens (``redis+sentinel``: see README, Redis choices).
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel"})

#: The long-term audit sinks ``AUDIT_SINKS`` may name (``none``: the Redis stream only).
AuditSinkName = Literal["file", "webhook"]
AUDIT_SINK_NAMES: tuple[AuditSinkName, ...] = ("file", "webhook")

#: Hosts an ``http://`` audit webhook may name (a receiver on the same machine).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

#: The shortest key an HTTP API client may have (a guessable key is no key).
MIN_API_KEY_LENGTH: Final = 24

#: Connections a process needs besides one per concurrent job.
POOL_HEADROOM = 10

#: What each mode cannot run without.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "serve": ("slack_bot_token", "slack_signing_secret", "mistral_api_key"),
    "worker": ("slack_bot_token", "mistral_api_key"),
    "socket": ("slack_bot_token", "slack_app_token", "mistral_api_key"),
    "check": (),
}


class Settings(BaseSettings):
    """Everything the bot reads from its environment. Field names map to upper-case variables."""

    # env_ignore_empty: a variable set to nothing (``REDIS_URL=`` as .env.example has it)
    # means unset, so that every line of .env.example works when copied as it is
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True
    )

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
    slack_posts_per_s: float = Field(
        default=1.0,
        gt=0,
        description="messages posted or updated a second in one channel, after a burst of "
        "three (Slack allows about one a second; above it, it answers 429)",
    )
    slack_org_approvers: bool = Field(
        default=True,
        description="whether people of other workspaces of the bot's Enterprise Grid "
        "organization may decide approvals (still only where the rule names them: the "
        "approvals channel's members, user groups, named users); an org-wide install has no "
        "home workspace, so false there leaves only its token's own workspace",
    )
    slack_org_requesters: bool = Field(
        default=True,
        description="whether people of other workspaces of the bot's Enterprise Grid "
        "organization may talk to the agent (DMs, @mentions)",
    )
    slack_external_approvers: bool = Field(
        default=False,
        description="whether people from other organizations (Slack Connect members of a "
        "shared approvals channel) may decide approvals where the rule names them; false "
        "refuses their clicks and forms with a note",
    )
    slack_external_requesters: bool = Field(
        default=False,
        description="whether people from other organizations (Slack Connect) may talk to "
        "the agent; false answers their DMs and @mentions with a short refusal",
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
    redis_cluster: bool = Field(
        default=False,
        description="true when REDIS_URL names a node of a Redis Cluster (or a cluster-mode "
        "managed Redis or Valkey): the client finds the other nodes; needs REDIS_URL",
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
    preflight: bool = Field(
        default=True,
        description="whether serve, socket and worker check Slack, Mistral and Redis once at "
        "start-up, in the background (logged, and shown by /readyz; see approval-bot doctor)",
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_format: LogFormat = Field(
        default="json",
        description="json (one JSON object per line, for log collectors) or text (for people)",
    )
    audit_retention_days: int = Field(
        default=365, gt=0, description="how long the audit trail in Redis keeps entries"
    )
    audit_sinks: str = Field(
        default="file",
        description="where audit entries are kept for the long term besides Redis, comma "
        "separated: file (day files in AUDIT_DIR), webhook (AUDIT_WEBHOOK_URL); none for the "
        "Redis stream only",
    )
    audit_dir: Path | None = Field(
        default=None,
        description="the directory of the audit day files (audit-YYYY-MM-DD.jsonl); default "
        "DATA_DIR/audit",
    )
    audit_webhook_url: str | None = Field(
        default=None,
        description="the https:// URL audit entries are POSTed to (a SIEM's HTTP collector), "
        "when AUDIT_SINKS has webhook",
    )
    audit_webhook_secret: str | None = Field(
        default=None,
        description="a secret to sign each webhook body with (HMAC-SHA256, header "
        "X-Approval-Bot-Signature); unset sends it unsigned",
    )

    api_requests_per_minute: int = Field(
        default=120,
        gt=0,
        description="requests one HTTP API client may make a minute (long polls included); "
        "past it, 429 with Retry-After",
    )
    api_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="the largest body an HTTP API request may have (413 past it)",
    )
    api_webhook_private_addresses: bool = Field(
        default=False,
        description="whether an HTTP API client's callback_url may reach this machine or a "
        "private network (loopback, RFC 1918, link-local, ...): for receivers inside your "
        "network. Off, such URLs are refused (422), and a host name that resolves only to "
        "such addresses is not posted to, so that a client cannot make the bot reach "
        "internal services (SSRF)",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = urlsplit(value).scheme
        if scheme not in REDIS_SCHEMES:
            raise ValueError(
                f"{value!r} is not a Redis URL; write redis://host:6379/0 (rediss:// for TLS, "
                "unix:///path/to/redis.sock for a socket), or leave it empty for the embedded "
                "Redis"
            )
        return value

    @field_validator("audit_sinks")
    @classmethod
    def _audit_sinks(cls, value: str) -> str:
        names = [name.strip().lower() for name in value.split(",") if name.strip()]
        if names == ["none"]:
            return "none"
        unknown = [name for name in names if name not in AUDIT_SINK_NAMES]
        if unknown or not names:
            raise ValueError(
                f"unknown audit sink {', '.join(unknown) or '(empty)'}: write file, webhook or "
                "both (file,webhook), or none for the Redis stream only"
            )
        return ",".join(dict.fromkeys(names))

    @field_validator("audit_webhook_url")
    @classmethod
    def _audit_webhook_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        secure = parts.scheme == "https" or (
            parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
        )
        if not secure or not parts.hostname:
            raise ValueError(
                "the audit webhook must be an https:// URL (audit entries hold tool arguments); "
                "http:// only to this machine (127.0.0.1, ::1, localhost)"
            )
        return value

    @model_validator(mode="after")
    def _audit_webhook_wanted(self) -> Settings:
        wanted = "webhook" in self.audit_sink_names
        if wanted and not self.audit_webhook_url:
            raise ValueError(
                "AUDIT_SINKS has webhook but AUDIT_WEBHOOK_URL is not set: set it to the "
                "receiver's https:// URL, or take webhook out of AUDIT_SINKS"
            )
        if self.audit_webhook_url and not wanted:
            raise ValueError(
                "AUDIT_WEBHOOK_URL is set but AUDIT_SINKS does not have webhook: add it "
                "(AUDIT_SINKS=file,webhook), or unset AUDIT_WEBHOOK_URL"
            )
        return self

    @property
    def audit_sink_names(self) -> tuple[AuditSinkName, ...]:
        """The sinks AUDIT_SINKS names, in its order (none: empty)."""
        return tuple(name for name in AUDIT_SINK_NAMES if name in self.audit_sinks.split(","))

    @property
    def audit_directory(self) -> Path:
        return self.audit_dir if self.audit_dir is not None else self.data_dir / "audit"

    @model_validator(mode="after")
    def _pool_fits_the_workers(self) -> Settings:
        # each job a process runs holds a connection while it talks to Redis, and the
        # Slack listeners, the sweeper and the job reader need theirs too
        needed = self.worker_concurrency + POOL_HEADROOM
        if self.redis_max_connections < needed:
            raise ValueError(
                f"REDIS_MAX_CONNECTIONS ({self.redis_max_connections}) must be at least "
                f"WORKER_CONCURRENCY + {POOL_HEADROOM} ({needed}): raise "
                "REDIS_MAX_CONNECTIONS or lower WORKER_CONCURRENCY"
            )
        return self

    def require(self, mode: Mode) -> None:
        """Raise one ConfigError listing every variable ``mode`` needs and lacks."""
        missing = [name for name in _REQUIRED[mode] if not getattr(self, name)]
        problems = [
            f"{name.upper()} is not set: {type(self).model_fields[name].description}"
            for name in missing
        ]
        if missing:
            problems.append("Set them in the environment or in .env (see .env.example).")
        problems += self.redis_problems()
        if problems:
            raise ConfigError("the environment", problems)

    def redis_problems(self) -> list[str]:
        """What is wrong with the Redis settings, whatever the mode (empty: nothing)."""
        if self.redis_cluster and self.redis_url is None:
            return [
                "REDIS_CLUSTER is true but REDIS_URL is not set: the embedded Redis is one "
                "server, not a cluster. Fix: set REDIS_URL to any node of the cluster "
                "(redis://host:port or rediss://host:port), or unset REDIS_CLUSTER"
            ]
        return []

    @property
    def secrets(self) -> list[str]:
        """The values no log line may show."""
        given = (
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.mistral_api_key,
            self.audit_webhook_secret,
        )
        return [value for value in given if value]


def load_api_clients(
    config: BotConfig, config_path: Path, environ: Mapping[str, str] | None = None
) -> tuple[ApiClient, ...]:
    """The HTTP API's clients, each with its key read from the environment variable the
    config names (``key_env``); ConfigError names the file, field and line of each unset or
    too short one."""
    environ = os.environ if environ is None else environ
    _, lines = read_yaml(config_path) if config_path.exists() else (None, {})
    clients: list[ApiClient] = []
    problems: list[str] = []
    for index, client in enumerate(config.api.clients):
        key = environ.get(client.key_env, "")
        if len(key) < MIN_API_KEY_LENGTH:
            state = "is not set" if not key else f"is shorter than {MIN_API_KEY_LENGTH} characters"
            problems.append(
                describe(
                    config_path,
                    lines,
                    ("api", "clients", index, "key_env"),
                    f"the environment variable {client.key_env} {state}; fix: set it to a long "
                    "random key (python -c 'import secrets; print(secrets.token_urlsafe(32))')",
                )
            )
        clients.append(ApiClient(client.name, key, tuple(client.requesters)))
    if problems:
        raise ConfigError(str(config_path), problems)
    return tuple(clients)


def load_settings(mode: Mode, env_file: Path | None = Path(".env")) -> Settings:
    """Read the environment; raise ConfigError naming every wrong or missing variable."""
    try:
        settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as error:
        problems = [_problem(e) for e in error.errors()]
        raise ConfigError("the environment", problems) from error
    settings.require(mode)
    return settings


def _problem(error: ErrorDetails) -> str:
    """One line for a wrong variable: its name, what is wrong, and the value given (never
    for a check across several variables, whose input would be every value, secrets too)."""
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:
        return message
    name = ".".join(str(part) for part in error["loc"]).upper()
    return f"{name}: {message} (got {error.get('input')!r})"
