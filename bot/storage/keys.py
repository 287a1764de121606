"""Every Redis key the bot uses, in one place.

Keys are namespaced ``{approval-bot}:<kind>:<id>``. Each kind states its lifetime: either a
TTL (named with its unit) or why it has none.

The braces are a Redis Cluster *hash tag*: a cluster places a key by the part between the
first ``{`` and ``}`` only, so every key of the bot lives in one hash slot, by design. That
is what lets every Lua script and MULTI touch several keys (a request, its schedules and the
job stream in one step) and lets the job stream's consumer group be read alongside them: a
cluster refuses (CROSSSLOT) any script or transaction whose keys span slots. The cost is
that one cluster node holds and serves all of the bot's data; the bot's load (a few
thousand small keys, a few commands per click) is far below what one node does, so nothing
is lost by not spreading it. On a single Redis, or behind Sentinel, the braces are just
part of the name.

Before the hash tag, keys were named ``approval-bot:<kind>:<id>`` (``LEGACY_PREFIX``);
``bot.storage.key_migration`` renames them at start-up.
"""

from __future__ import annotations

from typing import Final

#: The hash tag shared by every key (see above). Scripts and transactions get their keys from
#: here; a key built anywhere else must start with it too.
PREFIX: Final = "{approval-bot}"

#: What keys were named before the hash tag; read only by ``bot.storage.key_migration``.
LEGACY_PREFIX: Final = "approval-bot"

#: Schema version written into every stored approval; older versions stay readable.
#: 1: one approvals channel. 2: a policy gate (approvers, quorum), votes, per-call verdicts.
#: 3: a gate, votes and a decision per call (field ``decisions``), edits, a ``revision``.
#: 4: the deferral stored with each call's arguments once (bot.storage.stored_deferral).
#: 5: ``origin``, the HTTP API client that asked ("" for Slack); a process older than 5 would
#: take such a request for a Slack conversation and resume it: no rolling overlap across 5.
SCHEMA_VERSION: Final = 5

# -- approvals -------------------------------------------------------------------------------
#: Hash: one approval request (its metadata, the serialized deferral, the decision).
#: No TTL while undecided: a pending request must never vanish. Once the conversation has
#: resumed it is kept ``DECIDED_APPROVAL_TTL_S`` for people who click old cards.
APPROVAL: Final = f"{PREFIX}:approval:"
DECIDED_APPROVAL_TTL_S: Final = 30 * 24 * 3600

#: Sorted set of approval ids by creation time, undecided ones only (for listing and,
#: later, expiry). No TTL: members are removed when decided.
PENDING_ZSET: Final = f"{PREFIX}:pending_zs"

#: Sorted set per requester: their approval ids by creation time, for the App Home.
#: Trimmed to the newest ``REQUESTS_BY_KEPT``; expires ``REQUESTS_BY_TTL_S`` after the last.
REQUESTS_BY: Final = f"{PREFIX}:requests-by:"
REQUESTS_BY_KEPT: Final = 50
REQUESTS_BY_TTL_S: Final = 30 * 24 * 3600

#: String: the stored result of an approved local tool call, by tool_call_id, so that a
#: retried resume appends the result instead of running the tool again.
CALL_RESULT: Final = f"{PREFIX}:call-result:"
CALL_RESULT_TTL_S: Final = 30 * 24 * 3600
#: String: set (NX) just before an approved call runs, with the same TTL as its result. A
#: marker without a result means a process began the call and never finished: the call is
#: not run again, and its outcome is reported as unknown.
CALL_EXECUTING: Final = f"{PREFIX}:call-executing:"

# -- durable work ----------------------------------------------------------------------------
#: Stream: jobs any bot process may run (``kind``: resume | announce | thread, ``target``: an
#: approval id or a thread key), read through the consumer group ``JOBS_GROUP``. No TTL and no
#: MAXLEN (trimming could drop a job nobody ran): an entry is deleted once it is acknowledged.
JOBS: Final = f"{PREFIX}:jobs"
JOBS_GROUP: Final = "bots"

#: Sorted set of undecided approval ids by the time they expire. No TTL: members are
#: removed when the request is decided or expires.
EXPIRING_ZSET: Final = f"{PREFIX}:expiring_zs"

#: Sorted set of undecided approval ids by when their card's next reminder is due. No TTL:
#: members are removed once reminded for the last time, decided or expired.
REMINDERS_ZSET: Final = f"{PREFIX}:reminders_zs"

#: Sorted set of undecided approval ids whose card is not posted yet, by when to try again
#: (Slack was down). No TTL: members are removed once the card is posted or the request ends.
CARDS_DUE_ZSET: Final = f"{PREFIX}:cards-due_zs"
CARD_RETRY_S: Final = 60

#: String: the sweeper's lock (expiry, reminders, cards to post again); one process at a
#: time holds it, for at most ``SWEEPER_LOCK_TTL_MS``.
SWEEPER_LOCK: Final = f"{PREFIX}:sweeper-lock"
SWEEPER_LOCK_TTL_MS: Final = 60_000

#: String: the lock of the start-up migration from ``LEGACY_PREFIX`` names; the process
#: renaming holds it, renewing it every batch, for at most ``MIGRATION_LOCK_TTL_MS``.
MIGRATION_LOCK: Final = f"{PREFIX}:migration-lock"
MIGRATION_LOCK_TTL_MS: Final = 30_000

# -- threads ---------------------------------------------------------------------------------
#: Hash: one Slack thread's conversation (``conversation_id``), its state
#: (``idle`` / ``running`` / ``waiting``), the approval it waits for, and the message being
#: run (``current``) with its "working" placeholder (``placeholder``), both kept for a job
#: that takes over from a process that died.
#: Refreshed on every message; a thread silent for ``THREAD_TTL_S`` starts afresh.
THREAD: Final = f"{PREFIX}:thread:"
THREAD_TTL_S: Final = 90 * 24 * 3600

#: List: messages that arrived while the thread was busy, oldest first. Same TTL as THREAD.
THREAD_QUEUE: Final = f"{PREFIX}:thread-queue:"

#: String: a message whose run failed upstream, kept for the Retry button.
TURN: Final = f"{PREFIX}:turn:"
TURN_TTL_S: Final = 7 * 24 * 3600

# -- policy ----------------------------------------------------------------------------------
#: String: JSON of a grant ("approve for 1 hour"): tool, requester, rule and its gate, argument
#: scope, who, when. Its TTL is the grant's duration, so an expired grant is gone.
GRANT: Final = f"{PREFIX}:grant:"

#: String: the id of the grant covering (requester, gate fingerprint, argument scope, tool).
#: Same TTL as GRANT. Lookups written before grants were scoped to a gate named no gate; they
#: are never read again (those grants stop applying: fail closed) and expire with their TTL.
GRANT_FOR: Final = f"{PREFIX}:grant-for:"

#: Sorted set of grant ids by expiry time, for listing. No TTL: expired members are pruned
#: whenever it is read, revoked ones removed on revocation.
GRANTS_ZSET: Final = f"{PREFIX}:grants_zs"

#: Hash: admins' runtime overrides, tool name or glob -> JSON {effect, by, at}. No TTL: an
#: override stays until an admin resets it.
OVERRIDES: Final = f"{PREFIX}:overrides"

#: Stream: the audit trail (who did what, when). Trimmed to the configured retention.
AUDIT_STREAM: Final = f"{PREFIX}:audit"

#: String: the stream id of an audit entry written under a deterministic entry id (a job's
#: id, the call and the event), so that a retried job finds it and does not write it again.
#: Kept ``AUDIT_ENTRY_SEEN_TTL_S``: longer than a job can wait to be retried (it is retried
#: within minutes; a week covers every process being down for days).
AUDIT_ENTRY_SEEN: Final = f"{PREFIX}:audit-entry:"
AUDIT_ENTRY_SEEN_TTL_S: Final = 7 * 24 * 3600

#: Hash: per audit sink (``file``, ``webhook``), the stream id of the last entry it took
#: for good. No TTL: it is the shipper's position; without it every sink starts over.
AUDIT_SHIPPED: Final = f"{PREFIX}:audit-shipped"

#: String: the lock of one sink's shipper; one process at a time ships to a sink, renewing
#: the lock while it runs, for at most ``AUDIT_SHIPPER_LOCK_TTL_MS`` after it stops.
AUDIT_SHIPPER_LOCK: Final = f"{PREFIX}:audit-shipper-lock:"
AUDIT_SHIPPER_LOCK_TTL_MS: Final = 30_000

#: String: set when an announce job created its grant, so that a retried job does not
#: create it again (nor bring back a grant revoked meanwhile). Same TTL as AUDIT_ENTRY_SEEN.
GRANT_MADE: Final = f"{PREFIX}:grant-made:"

# -- the HTTP API (bot.api) -----------------------------------------------------------------
#: String: ``<approval id>:<fingerprint of the body>`` under a client's ``Idempotency-Key``
#: (hashed), set once (NX) before the request is made: the same key returns the same
#: request. Claimed for ``API_IDEMPOTENCY_CLAIM_TTL_S`` while the request is being made (a
#: process dying then frees it soon), kept ``API_IDEMPOTENCY_TTL_S`` once it is stored.
API_IDEMPOTENCY: Final = f"{PREFIX}:api-idempotency:"
API_IDEMPOTENCY_CLAIM_TTL_S: Final = 120
API_IDEMPOTENCY_TTL_S: Final = 24 * 3600

#: String: a client's request count in one rate-limit window (INCR); it expires with the
#: window (``API_RATE_WINDOW_S``, plus a second of slack for clocks).
API_RATE: Final = f"{PREFIX}:api-rate:"
API_RATE_WINDOW_S: Final = 60

#: Sorted set of approval ids whose decision is to be POSTed to their callback URL, by
#: when to try next. No TTL: a member leaves when delivered or given up
#: (``WEBHOOK_GIVE_UP_S`` after its first attempt).
WEBHOOKS_DUE_ZSET: Final = f"{PREFIX}:webhooks-due_zs"
WEBHOOK_GIVE_UP_S: Final = 24 * 3600
#: How long a delivery taken by a job may run before the sweeper offers it again.
WEBHOOK_IN_FLIGHT_S: Final = 60

#: String: held by the job delivering a request's webhook, so that two jobs for it (the
#: first one, and the sweeper's once it seemed late) never POST at once. Lives
#: ``WEBHOOK_LOCK_TTL_MS``: longer than one attempt (10 s), gone if its process dies.
WEBHOOK_LOCK: Final = f"{PREFIX}:webhook-lock:"
WEBHOOK_LOCK_TTL_MS: Final = 30_000

#: Hash: one request's webhook delivery: ``attempts``, ``first_at``, ``last_error``. Kept
#: ``WEBHOOK_STATE_TTL_S`` (beyond the give-up time, so a late attempt still counts).
WEBHOOK_STATE: Final = f"{PREFIX}:webhook:"
WEBHOOK_STATE_TTL_S: Final = 2 * 24 * 3600

# -- Slack -----------------------------------------------------------------------------------
#: String: JSON list of a channel's members (``conversations.members``), a short cache.
CHANNEL_MEMBERS: Final = f"{PREFIX}:members:"
CHANNEL_MEMBERS_TTL_S: Final = 300

#: String: JSON list of a user group's members (``usergroups.users.list``), a short cache.
USERGROUP_MEMBERS: Final = f"{PREFIX}:usergroup-members:"
USERGROUP_MEMBERS_TTL_S: Final = 300

#: String: JSON map of every user group to its members (``usergroups.list``), a short cache
#: for "which groups is this requester in".
USERGROUPS: Final = f"{PREFIX}:usergroups"
USERGROUPS_TTL_S: Final = 300

#: String: an Events API ``event_id`` seen already; Slack retries for up to an hour.
EVENT_SEEN: Final = f"{PREFIX}:event:"
EVENT_SEEN_TTL_S: Final = 3600


def approval(approval_id: str) -> str:
    return APPROVAL + approval_id


def call_result(tool_call_id: str) -> str:
    return CALL_RESULT + tool_call_id


def call_executing(tool_call_id: str) -> str:
    return CALL_EXECUTING + tool_call_id


def thread(thread_key: str) -> str:
    return THREAD + thread_key


def thread_queue(thread_key: str) -> str:
    return THREAD_QUEUE + thread_key


def turn(turn_id: str) -> str:
    return TURN + turn_id


def channel_members(channel_id: str) -> str:
    return CHANNEL_MEMBERS + channel_id


def event_seen(event_id: str) -> str:
    return EVENT_SEEN + event_id


def requests_by(user_id: str) -> str:
    return REQUESTS_BY + user_id


def grant(grant_id: str) -> str:
    return GRANT + grant_id


def grant_for(requester_id: str, gate: str, tool: str, scope: str) -> str:
    return f"{GRANT_FOR}{requester_id}:{gate}:{scope}:{tool}"


def usergroup_members(usergroup_id: str) -> str:
    return USERGROUP_MEMBERS + usergroup_id


def audit_entry_seen(entry_id: str) -> str:
    return AUDIT_ENTRY_SEEN + entry_id


def audit_shipper_lock(sink: str) -> str:
    return AUDIT_SHIPPER_LOCK + sink


def grant_made(grant_id: str) -> str:
    return GRANT_MADE + grant_id


# -- the agent's thread as Slack shows AI apps (issue 17) ------------------------------------
#: Hash: a thread shown the native way (status, streamed steps and answer): ``requester``,
#: ``team`` (the stream's recipient), ``ts`` (the stream open now, absent between runs) and
#: ``titled``. Any process continues it from here. Same TTL as THREAD, refreshed on write.
AGENT_THREAD: Final = f"{PREFIX}:agent-thread:"
#: Hash: per thread, tool_call_id -> the step as last shown (JSON), so that a step is shown
#: again only when it changed: a retried resume, or one in another process, shows nothing
#: twice. Same TTL as THREAD.
AGENT_STEPS: Final = f"{PREFIX}:agent-steps:"
#: String: a workspace where Slack refused the AI-app methods (``unknown_method``,
#: ``not_allowed_token_type``...), with the error. It gets the placeholder messages instead
#: for ``NATIVE_OFF_TTL_S``, then the methods are tried again (a plan may change).
NATIVE_OFF: Final = f"{PREFIX}:native-off:"
NATIVE_OFF_TTL_S: Final = 3600
#: String: the message with a request's buttons in its requester's thread (JSON ref), to
#: update it as the card is. Kept as long as a decided request (DECIDED_APPROVAL_TTL_S).
THREAD_CARD: Final = f"{PREFIX}:thread-card:"


def agent_thread(thread_key: str) -> str:
    return AGENT_THREAD + thread_key


def agent_steps(thread_key: str) -> str:
    return AGENT_STEPS + thread_key


def native_off(team_id: str) -> str:
    return NATIVE_OFF + team_id


def thread_card(approval_id: str) -> str:
    return THREAD_CARD + approval_id


def api_idempotency(client: str, key_hash: str) -> str:
    return f"{API_IDEMPOTENCY}{client}:{key_hash}"


def api_rate(client: str, window: int) -> str:
    return f"{API_RATE}{client}:{window}"


def webhook_state(approval_id: str) -> str:
    return WEBHOOK_STATE + approval_id


def webhook_lock(approval_id: str) -> str:
    return WEBHOOK_LOCK + approval_id
