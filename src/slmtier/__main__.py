"""`python -m slmtier ...` is the `slmtier` command."""

from slmtier.cli.main import main

main()
