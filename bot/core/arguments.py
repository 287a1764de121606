"""A tool call's arguments in one canonical spelling (pure: used by the policy's grants, the
at-most-once ledger and the audit alike)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def canonical_arguments(arguments: Mapping[str, Any] | str) -> str:
    """One spelling of a call's arguments, to recognize the same call again: keys sorted, no
    spaces; text that is not JSON is kept as it is."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return str(arguments)
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
