"""Outbound webhooks: event types and endpoint subscriptions, emitting events, signed delivery from the outbox, the delivery log and redelivery."""
