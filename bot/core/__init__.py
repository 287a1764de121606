"""The domain core: an approval request's lifecycle (``approval``), the policy that decides
who is asked (``policy``, ``conditions``), editing a call's arguments (``editing``,
``argument_errors``), and the config file's model (``config``).

Pure: it imports nothing of Slack, HTTP, Redis or the Mistral SDK (tests/test_purity.py
checks it), only ``bot.errors`` and itself. Everything else imports it.
"""
