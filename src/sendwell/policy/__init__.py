"""Frequency policy: per-stage caps, per-contact tiers, pauses, the transactional exemption, and eligibility to send."""
