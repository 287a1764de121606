"""The Redis side: every key (``keys``), the shared client (``connections``), the embedded
server (``embedded_redis``), the stores (``store``: requests, threads, the at-most-once
ledger; ``policy_store``: grants and overrides), durable jobs (``jobs``), the audit trail and
its sinks (``audit``, ``audit_sinks``, ``audit_shipper``), and the key migration.

Imports the core; never Slack, the Mistral side, the flow or ops.
"""
