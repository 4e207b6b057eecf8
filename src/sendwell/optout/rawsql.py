"""Temporary re-export; the lead rewrites importers and deletes this file."""

from sendwell.db.rawsql import Statement, read_datetime  # noqa: F401
