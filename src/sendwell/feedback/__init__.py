"""Inbound feedback: DSN bounces, ARF complaints, provider webhooks, auto-replies, tied to the mail we sent."""
