"""The campaign context: a campaign's own use cases, which delivery plans and sends."""
