"""Tools the tests give the agent. Each records its calls, so a test can count executions."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

CALLS: list[tuple[str, dict[str, object]]] = []


def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: The city name.
    """
    CALLS.append(("get_weather", {"city": city}))
    return f"Sunny in {city}"


async def book_flight(destination: str, date: str) -> str:
    """Book a flight.

    Args:
        destination: The destination city.
        date: The date, YYYY-MM-DD.
    """
    CALLS.append(("book_flight", {"destination": destination, "date": date}))
    return f"Booked {destination} on {date}: FL-1"


def send_note(text: str) -> str:
    """Send a note to the team.

    Args:
        text: What to say.
    """
    CALLS.append(("send_note", {"text": text}))
    return "sent"


def buy(item: str, price: float) -> str:
    """Buy something for the team.

    Args:
        item: What to buy.
        price: The price in euros.
    """
    CALLS.append(("buy", {"item": item, "price": price}))
    return f"Bought {item} for {price:g} EUR"


def delete_note(note_id: str) -> str:
    """Delete a note.

    Args:
        note_id: The note's id.
    """
    CALLS.append(("delete_note", {"note_id": note_id}))
    return "deleted"


def book_seats(flight: str, seats: Annotated[int, Field(ge=1, le=9)]) -> str:
    """Book seats on a flight.

    Args:
        flight: The flight number.
        seats: How many seats.
    """
    CALLS.append(("book_seats", {"flight": flight, "seats": seats}))
    return f"Booked {seats} seats on {flight}"


def pay_invoice(invoice: str, amount: int) -> str:
    """Pay a supplier's invoice.

    Args:
        invoice: The invoice number.
        amount: The amount in euros.
    """
    CALLS.append(("pay_invoice", {"invoice": invoice, "amount": amount}))
    return f"Paid {invoice}: {amount} EUR"


def runs_of(name: str) -> list[dict[str, object]]:
    return [arguments for tool, arguments in CALLS if tool == name]


NOT_A_FUNCTION = 42
