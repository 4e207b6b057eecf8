"""Temporary re-export; the lead rewrites importers and deletes this file."""

from sendwell.delivery.instruments import SMTP_SECONDS, smtp_timer  # noqa: F401
from sendwell.web.prometheus import DatabaseCollector, exposition  # noqa: F401
