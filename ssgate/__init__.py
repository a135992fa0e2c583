"""ssgate: configuration, database, the ``ssgate`` command and service assembly."""

__version__ = "0.1.0"
