"""The engine: sync a connection, a user or a listing; drain the unpublish outbox."""
