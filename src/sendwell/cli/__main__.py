"""`python -m sendwell.cli` runs the `sendwell` command."""

from sendwell.cli.main import main

main()
