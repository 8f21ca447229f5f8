"""The ``spatialspec`` command line: one module per command."""
