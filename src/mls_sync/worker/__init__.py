"""Scale-out on PostgreSQL with procrastinate: `mls-sync worker` processes run the syncs.

`app.py` builds the procrastinate app and its tasks, `jobs.py` holds what each task does (the
same engine functions the single-machine mode calls), `executor.py` defers them for the API,
and `schema.py` installs procrastinate's tables.
"""
