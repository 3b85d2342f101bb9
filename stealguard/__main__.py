"""``python -m stealguard``: the ``stealguard`` command line (:func:`stealguard.cli.main`)."""

from stealguard.cli import main

raise SystemExit(main())
