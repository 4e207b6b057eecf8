"""Signup forms with double opt-in: forms, pending signups, confirmation mail and proof of consent."""
