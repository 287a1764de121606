"""The benchmark's agent tool: answers at once, so that the bot's own work is measured."""

from __future__ import annotations


async def book_flight(destination: str, date: str, notes: str = "") -> str:
    """Book a flight.

    Args:
        destination: The destination city.
        date: The date, YYYY-MM-DD.
        notes: Notes for the travel agent.
    """
    return f"Booked {destination} on {date}: FL-1"
