"""Errors that name what was wrong and what was expected; the CLI exits 2 on them."""


class PodbenchError(Exception):
    """Base class of every error podbench reports to the user without a traceback."""


class ConfigError(PodbenchError):
    """A config file, key, value or command-line override is invalid."""


class DataError(PodbenchError):
    """A dataset file, table, column or selection is missing or malformed."""


class StoreError(PodbenchError):
    """A feature store is missing, incomplete or corrupt."""
