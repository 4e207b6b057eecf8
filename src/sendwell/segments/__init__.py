"""Segments: rule expressions over contact fields, topics, engagement and consent, compiled to SQL; live counts."""
