"""API access: bearer tokens with scopes."""
