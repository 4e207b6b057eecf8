"""Temporary re-export; the lead rewrites importers and deletes this file."""

from sendwell.insight.rates import (  # noqa: F401
    CAMPAIGN_DIMENSIONS,
    DIMENSIONS,
    REASONS,
    Rates,
    breakdown,
    campaign_rates,
    over_time,
    reasons,
)
