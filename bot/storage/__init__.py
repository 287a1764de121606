"""The Redis side: every key (``keys``), the shared client (``connections``), the embedded
server (``embedded_redis``), one store per concern (``store``: requests, holding
``threads``, ``ledger`` and ``caches``; ``thread_store``, ``call_ledger``, ``cache_store``,
``policy_store``: grants and overrides; ``agent_threads``; ``api_store``), durable jobs
(``jobs``), the audit trail and its sinks (``audit``, ``audit_sinks``, ``audit_shipper``),
and the key migration.

Imports the core; never Slack, the Mistral side, the flow or ops.
"""
