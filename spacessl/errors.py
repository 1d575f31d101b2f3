"""Errors that spacessl raises for bad input: each names the file or value and the fix."""

from __future__ import annotations


class SpacesslError(ValueError):
    """Base class of every user-facing spacessl error (bad input, bad config, bad archive)."""


class ConfigError(SpacesslError):
    """A configuration key or value is invalid."""
