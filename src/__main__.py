"""`python -m asrhub ...`: the same as the `asrhub` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
