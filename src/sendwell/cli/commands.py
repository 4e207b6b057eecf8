"""The list of command groups the entry point registers."""

from __future__ import annotations

ALL: list = []
