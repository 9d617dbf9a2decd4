"""External programs the tests need: skipped with a visible reason locally, a failure under CI."""

import os
import shutil

import pytest

TOOLS = {"espeak-ng": ("espeak-ng",), "chromium": ("chromium", "chromium-browser")}  # name -> executables


def under_ci() -> bool:
    """True where the environment says CI (GitHub Actions, GitLab and most others set CI=true)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def find_tool(name: str) -> str | None:
    """Path of the first executable that provides tool `name`, or None."""
    return next(filter(None, map(shutil.which, TOOLS.get(name, (name,)))), None)


def require_tool(name: str, purpose: str) -> str:
    """Path of tool `name`; without it the test skips naming `purpose`, or fails under CI (CI installs
    every test tool: `make test-deps`, Makefile APT_TEST_PACKAGES)."""
    path = find_tool(name)
    if path is None:
        message = f"{name} is not installed: {purpose}"
        if under_ci():
            pytest.fail(f"{message} (CI=true: it must be installed, see make test-deps)", pytrace=False)
        pytest.skip(message)
    return path


def missing_tools() -> list[str]:
    """The test tools this machine lacks."""
    return [name for name in TOOLS if find_tool(name) is None]
