"""The suppression list: scope × reason, stored as an HMAC-peppered hash so GDPR erasure keeps the opt-out."""
