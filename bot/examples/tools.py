"""Example tools: one that is safe to run, one that a person must approve.

Replace them with your own: any module on the Python path, named as ``module:function``.
The model sees each function's name, docstring and typed parameters.
"""

from __future__ import annotations

import hashlib


def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: The city name, e.g. "Paris".
    """
    # A stand-in for a real weather service, stable for a given city.
    temperature = 10 + int(hashlib.sha256(city.encode()).hexdigest(), 16) % 20
    return f"The weather in {city} is sunny, {temperature}°C"


async def book_flight(destination: str, date: str) -> str:
    """Book a flight to a destination on a date.

    Args:
        destination: The destination city.
        date: The date of the flight, YYYY-MM-DD.
    """
    reference = hashlib.sha256(f"{destination}{date}".encode()).hexdigest()[:6].upper()
    return f"Flight booked to {destination} on {date}. Confirmation: FL-{reference}"
