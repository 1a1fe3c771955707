"""The DynamoDB storage backend (`DATABASE_URL=dynamodb://PREFIX?region=...`): the same
repository functions as SQLAlchemy, over two tables (schema.py) and a unit of work with
optimistic version checks (session.py)."""
