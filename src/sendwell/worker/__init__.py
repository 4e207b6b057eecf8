"""The worker adapter: the queue consumer (embedded or Redis) and its scheduler thread."""
