"""The Slack surface: Bolt app, listeners, Block Kit builders and the Chat adapter."""
