"""Delivery: plans a campaign into sends and sends them (state machine, MIME, DKIM, List-Unsubscribe, SMTP, retries)."""
