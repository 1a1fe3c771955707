"""Scale-out on PostgreSQL with procrastinate: `mls-sync worker` processes run the syncs.

`app.py` builds the procrastinate app and its tasks (each task calls one function of
services/queued_runs.py, as a route calls one service), and `schema.py` installs
procrastinate's tables. Deferring jobs for the API is executors/procrastinate.py's part.
"""
