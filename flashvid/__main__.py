"""``python -m flashvid``: the same command as the ``flashvid`` console script (``flashvid.cli:main``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
