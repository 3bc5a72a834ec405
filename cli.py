"""Entry point of the `podbench` command (the click application is podbench/cli.py)."""

from podbench.cli import main

if __name__ == "__main__":
    main()
