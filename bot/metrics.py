"""Prometheus metrics: what the bot decided, how long people took, what failed upstream.

Every metric lives on the :class:`Metrics` object's own registry (not the library's global
one), so that several bots in one process (the tests) count apart. The composition root
builds one and hands it to the parts that record; ``GET /metrics`` renders it.

The hot path only increments counters and observes histograms; the backlog gauges (pending
requests, queued and running jobs) are read from Redis when Prometheus scrapes.
"""

from __future__ import annotations

from collections import deque
from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.errors import UpstreamError
from bot.storage.store import Backlog

#: The ``outcome`` label of ``approval_bot_requests_total``, counted per call decided.
RequestOutcome = Literal["approved", "denied", "expired", "auto_allowed", "auto_denied"]
REQUEST_OUTCOMES: Final[tuple[RequestOutcome, ...]] = (
    "approved",
    "denied",
    "expired",
    "auto_allowed",
    "auto_denied",
)

#: People decide in seconds to a day (an approval may wait overnight), so the buckets span
#: 5 s to 1 day rather than the library's sub-second defaults.
DECISION_BUCKETS_S: Final = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 86400)

#: A resume is one or more Mistral round trips plus the approved tools' runs.
RESUME_BUCKETS_S: Final = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

#: Slack's deadline is 3 s; most answers should take milliseconds.
ACK_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5)


class Metrics:
    """The bot's metrics, on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.permanent_errors = Counter(
            "approval_bot_permanent_errors",
            "Failures that retrying cannot fix until a person acts (Slack's not_in_channel, "
            "missing_scope, …), by service and error code; not retried.",
            ["service", "error"],
            registry=self.registry,
        )
        #: the last permanent failures, for /readyz
        self.recent_permanent: deque[dict[str, str]] = deque(maxlen=10)
        self.requests = Counter(
            "approval_bot_requests",
            "Tool calls decided, by outcome: approved, denied (by people), expired (nobody "
            "decided in time), auto_allowed (a policy rule or a grant), auto_denied (a rule).",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in REQUEST_OUTCOMES:  # every outcome shows from the start, at 0
            self.requests.labels(outcome)
        self.decision_seconds = Histogram(
            "approval_bot_decision_seconds",
            "Time from a request's creation to a person's decision on one of its calls.",
            buckets=DECISION_BUCKETS_S,
            registry=self.registry,
        )
        self.pending_requests = Gauge(
            "approval_bot_pending_requests",
            "Approval requests waiting for a decision (read from Redis at scrape time).",
            registry=self.registry,
        )
        self.job_queue_depth = Gauge(
            "approval_bot_job_queue_depth",
            "Jobs in the stream, waiting or being run (read from Redis at scrape time).",
            registry=self.registry,
        )
        self.jobs_in_flight = Gauge(
            "approval_bot_jobs_in_flight",
            "Jobs some bot process has taken and not finished (read at scrape time).",
            registry=self.registry,
        )
        self.resume_seconds = Histogram(
            "approval_bot_resume_seconds",
            "Time to resume a conversation with a decision, by result (ok or failed).",
            ["result"],
            buckets=RESUME_BUCKETS_S,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "approval_bot_upstream_errors",
            "Failures of Slack, Mistral or Redis, by service and HTTP status ('none' if none).",
            ["service", "status"],
            registry=self.registry,
        )
        self.jobs_reclaimed = Counter(
            "approval_bot_jobs_reclaimed",
            "Jobs taken over from a bot process that stopped renewing their lease.",
            registry=self.registry,
        )
        self.jobs_given_up = Counter(
            "approval_bot_jobs_given_up",
            "Jobs given up after failing again and again.",
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "approval_bot_ack_seconds",
            "Time from a Slack request's arrival to its answer (Slack allows 3 s), by kind: "
            "block_actions, view_submission, event_callback, command.",
            ["kind"],
            buckets=ACK_BUCKETS_S,
            registry=self.registry,
        )
        self.ack_round_trips = Histogram(
            "approval_bot_ack_redis_round_trips",
            "Redis round trips between a Slack request's arrival and its answer, by kind.",
            ["kind"],
            buckets=(0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20),
            registry=self.registry,
        )
        self.audit_shipped = Counter(
            "approval_bot_audit_shipped",
            "Audit entries a long-term sink took (file, webhook), by sink.",
            ["sink"],
            registry=self.registry,
        )
        self.audit_sink_failures = Counter(
            "approval_bot_audit_sink_failures",
            "Batches of audit entries a sink did not take (offered again later), by sink.",
            ["sink"],
            registry=self.registry,
        )
        self.audit_sink_lag = Gauge(
            "approval_bot_audit_sink_lag_seconds",
            "Age of the oldest audit entry a sink has not taken yet (0: caught up), by sink; "
            "set by the process shipping to it.",
            ["sink"],
            registry=self.registry,
        )
        self.http_requests = Counter(
            "approval_bot_http_requests",
            "HTTP requests served, by route and status.",
            ["path", "status"],
            registry=self.registry,
        )

    def decided(self, outcome: RequestOutcome, *, waited_s: float | None = None) -> None:
        """One call decided; ``waited_s``: how long people took, for their decisions."""
        self.requests.labels(outcome).inc()
        if waited_s is not None:
            self.decision_seconds.observe(max(waited_s, 0.0))

    def refused_for_good(self, error: UpstreamError, doing: str) -> None:
        """A permanent failure (Slack's ``not_in_channel``, say): counted by its code, and
        kept (the last few) for ``/readyz`` so the operator sees what to fix."""
        code = error.code or "unknown"
        self.permanent_errors.labels(error.service, code).inc()
        self.recent_permanent.append(
            {"service": error.service, "error": code, "while": doing, "fix": error.fix or ""}
        )

    def upstream_failed(self, error: UpstreamError) -> UpstreamError:
        """Count ``error`` and give it back, to raise: ``raise metrics.upstream_failed(...)``."""
        status = "none" if error.status is None else str(error.status)
        self.upstream_errors.labels(error.service, status).inc()
        return error

    def answered(self, kind: str, seconds: float, round_trips: int) -> None:
        """A Slack request answered after ``seconds`` and ``round_trips`` to Redis."""
        self.ack_seconds.labels(kind).observe(seconds)
        self.ack_round_trips.labels(kind).observe(round_trips)

    def resumed(self, seconds: float, *, ok: bool) -> None:
        self.resume_seconds.labels("ok" if ok else "failed").observe(seconds)

    def show_backlog(self, backlog: Backlog) -> None:
        self.pending_requests.set(backlog.pending_requests)
        self.job_queue_depth.set(backlog.job_queue_depth)
        self.jobs_in_flight.set(backlog.jobs_in_flight)

    def render(self) -> bytes:
        """The registry in Prometheus's text format (``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)
