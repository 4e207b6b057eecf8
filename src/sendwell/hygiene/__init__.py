"""Sendwell."""
