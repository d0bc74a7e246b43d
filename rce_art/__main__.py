"""``python -m rce_art``: the ``rce-art`` command."""

from rce_art.report.cli import main

raise SystemExit(main())
