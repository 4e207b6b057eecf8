"""Sender-domain readiness: SPF, DKIM, DMARC alignment, the bounce MX, reverse DNS (docs/delivery.md)."""
