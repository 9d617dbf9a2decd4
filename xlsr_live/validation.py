"""Validation helper shared by the options dataclasses of every concern."""

from __future__ import annotations


def check(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless condition holds."""
    if not condition:
        raise ValueError(message)
