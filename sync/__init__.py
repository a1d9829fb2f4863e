"""A self-hosted server that keeps one user's library of files in sync across devices."""

__version__ = "0.1.0"
