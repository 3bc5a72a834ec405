"""Errors that name what was wrong and what was expected; the CLI exits with their status."""


class PodbenchError(Exception):
    """Base class of every error podbench reports to the user without a traceback."""

    exit_code = 2


class ConfigError(PodbenchError):
    """A config file, key, value or command-line override is invalid."""


class DataError(PodbenchError):
    """A dataset file, table, column or selection is missing or malformed."""


class StoreError(PodbenchError):
    """A feature store is missing, incomplete or corrupt."""


class OutputError(PodbenchError):
    """An output root is not a writable folder with enough free space."""


class DiskFullError(OutputError):
    """The disk filled up while writing (a machine resource, not bad input: exit status 1)."""

    exit_code = 1
