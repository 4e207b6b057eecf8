"""Temporary re-export; the lead rewrites importers and deletes this file."""

from sendwell.bootstrap import create_dkim_key, initialise  # noqa: F401
