"""Adapter tests run on SQLite only, except those marked `both_backends` (tests/conftest.py)."""

from tests.conftest import sqlite_only

pytest_generate_tests = sqlite_only
