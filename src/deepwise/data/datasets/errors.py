"""Errors raised by the dataset readers and the downloader."""

from __future__ import annotations


class DatasetFormatError(ValueError):
    """A data file is not in the expected format (bad magic number, truncated, inconsistent)."""


class ChecksumError(ValueError):
    """A file's checksum differs from the published one."""


class DownloadError(OSError):
    """The official files could not be fetched (offline, blocked, server error)."""
