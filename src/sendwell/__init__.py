"""Sendwell: self-hosted email campaigns that treat the unsubscribe as a first-class signal."""

__version__ = "0.1.0"
