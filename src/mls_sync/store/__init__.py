"""Storage: SQLAlchemy tables, repositories, Alembic migrations and token encryption."""
