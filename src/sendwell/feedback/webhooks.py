"""Temporary re-export; the lead rewrites importers and deletes this file."""

from sendwell.feedback.providers import (  # noqa: F401
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    SnsVerifier,
    WebhookRejected,
    fetch_url,
    handle_sendgrid,
    handle_sns,
    load_sendgrid_key,
    parse_sns,
    sns_string_to_sign,
    verify_sendgrid,
)
