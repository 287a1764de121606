"""Example tools for bot.example.yml."""
