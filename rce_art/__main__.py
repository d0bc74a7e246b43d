"""``python -m rce_art``: the ``rce-art`` command."""

from rce_art.robustness.cli import main

raise SystemExit(main())
