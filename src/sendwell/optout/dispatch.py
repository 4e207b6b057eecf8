"""Temporary re-export; the lead rewrites importers and deletes this file."""

from sendwell.followups import dispatch_outbox  # noqa: F401
from sendwell.optout.followup_mails import mask_email  # noqa: F401
