"""`python -m mls_sync.cli ...`: the same commands as the `mls-sync` script."""

from mls_sync.cli import main

main()
