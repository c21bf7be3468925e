"""``python -m explorer`` is the same as the ``depin-explorer`` command."""

from explorer.cli import main

if __name__ == "__main__":
    main()
