"""The transactional outbox: work written in the caller's transaction and done after its commit."""
