"""Access: admin users with roles, and API bearer tokens with scopes."""
