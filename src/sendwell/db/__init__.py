"""Infrastructure: SQLAlchemy models, sessions and transactions, Alembic migrations, the raw-SQL helper."""
