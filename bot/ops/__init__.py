"""What an operator runs: the commands (``cli``, ``policy_cli``, ``audit_cli``, ``doctor``), the
HTTP server (``http_server``), the composition root (``services``) and the settings.

Imports everything; nothing imports it.
"""
