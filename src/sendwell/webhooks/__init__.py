"""Outbound webhooks: event types, endpoint subscriptions, the delivery log and redelivery."""
