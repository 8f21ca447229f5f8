"""``python -m spatialspec``: the same as the ``spatialspec`` command."""

from spatialspec.cli.main import main

raise SystemExit(main())
