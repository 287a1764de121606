"""A Python client of the bot's HTTP API, for agents that run outside Slack.

    async with ApprovalClient(url, key) as approvals:
        inputs = await approvals.decide(deferred, requester="U0123", summary="…", timeout=3600)
    result = await client.beta.conversations.run_async(run_ctx=run_ctx, inputs=inputs)

``SyncApprovalClient`` is the same for scripts. ``verify_webhook`` checks a webhook's
signature. It depends on the mistralai SDK and httpx2 (which the SDK brings) only, and
imports nothing of the bot's server side (tests/test_layout.py checks it).
"""

from bot.client.approvals import ApprovalClient, SyncApprovalClient, inputs_for
from bot.client.errors import ApiProblem, ApprovalClientError, ApprovalExpired, ApprovalTimeout
from bot.client.webhooks import verify_webhook

__all__ = [
    "ApiProblem",
    "ApprovalClient",
    "ApprovalClientError",
    "ApprovalExpired",
    "ApprovalTimeout",
    "SyncApprovalClient",
    "inputs_for",
    "verify_webhook",
]
