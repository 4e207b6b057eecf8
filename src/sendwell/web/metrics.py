"""Temporary re-export; the lead rewrites importers and deletes this file."""

from sendwell.web.prometheus import metrics_router  # noqa: F401
