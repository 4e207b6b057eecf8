"""Lifecycle sequences: a trigger enrols contacts, steps mail, wait, branch and set fields, exit rules end them."""
