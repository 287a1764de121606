"""The flow that ties the sides together: the orchestrator (``assistant``: messages into runs,
deferrals into requests, decisions into resumes), the policy applied to real calls
(``gatekeeper``), who is who (``directory``), what ``/approvals`` and the App Home show
(``console``), the sweeper, and the chat port the Slack side implements (``chat``).

Imports the core, storage and the Mistral side; never Slack (it talks to people through the
``Chat`` port) or ops.
"""
