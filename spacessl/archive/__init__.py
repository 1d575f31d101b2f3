"""The on-disk archive format (version 1): writer, reader and validation."""

from spacessl.archive.format import FORMAT_VERSION, ArchiveExistsError, ArchiveFormatError
from spacessl.archive.reader import Archive, Batch, open_archive
from spacessl.archive.writer import ArchiveWriter, default_rejects_path

__all__ = ["FORMAT_VERSION", "Archive", "ArchiveExistsError", "ArchiveFormatError", "ArchiveWriter", "Batch",
           "default_rejects_path", "open_archive"]
