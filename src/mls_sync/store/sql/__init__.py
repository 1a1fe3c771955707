"""The SQL backend (SQLAlchemy 2, on SQLite and PostgreSQL): one module per aggregate, each a
class implementing its Protocol of store/interface.py over the unit of work's `AsyncSession`,
and `session.py`, the unit of work that hands them out."""
