"""`python -m sqlmode` runs the command line."""

from .cli import main

main()
