"""Helpers for the browser tests: log in, save a screenshot, check the page fits the screen."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

_shots: Path | None = None


def screenshots_dir() -> Path:
    """$GOVBOT_SCREENSHOTS, or a temp dir (printed once so a person can look at the pictures)."""
    global _shots
    if _shots is None:
        named = os.environ.get("GOVBOT_SCREENSHOTS")
        _shots = Path(named) if named else Path(tempfile.mkdtemp(prefix="govbot-screenshots-"))
        _shots.mkdir(parents=True, exist_ok=True)
        print(f"\nbrowser screenshots in {_shots}")
    return _shots


def login(page: Any, live: Any, username: str, password: str = "demo") -> None:
    page.goto(f"{live.url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button.primary")
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


def shot(page: Any, name: str) -> Path:
    """A full-page screenshot, named by the test: <name>.png."""
    path = screenshots_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_no_horizontal_scroll(page: Any) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1] + 1, f"{page.url} scrolls sideways: {widths[0]}px of content in {widths[1]}px"
