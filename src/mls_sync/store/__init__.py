"""Storage: one interface (`interface.py`: a Protocol per aggregate, the unit of work, the
storage) with its SQL (`sql/`, SQLAlchemy on SQLite and PostgreSQL, Alembic migrations) and
DynamoDB (`dynamo/`) implementations; token encryption and API keys."""
