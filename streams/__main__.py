"""`python -m pushstream.streams` runs the `pushstream` command."""

from pushstream.streams.commands.cli import main

main()
