"""Bearer-token check shared by the HTTP routes and the OpenAI-compatible endpoints."""

from __future__ import annotations

import hmac
from typing import Optional


def token_ok(expected: Optional[str], given: Optional[str]) -> bool:
    """Constant-time token check; no token configured means open."""
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
