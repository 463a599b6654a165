"""Errors the flag services raise; every door (UI, API, CLI) turns them into its own answer."""

from __future__ import annotations


class FlagServiceError(Exception):
    """A request the flag services refuse, with a message fit to show a person."""


class FlagNotFound(FlagServiceError):
    def __init__(self, key: str) -> None:
        super().__init__(f"Unknown flag '{key}'.")
        self.key = key


class EnvironmentNotFound(FlagServiceError):
    def __init__(self, key: str) -> None:
        super().__init__(f"Unknown environment '{key}'.")
        self.key = key


class FlagAlreadyExists(FlagServiceError):
    def __init__(self, key: str) -> None:
        super().__init__(f"A flag named '{key}' already exists.")
        self.key = key


class FlagArchived(FlagServiceError):
    def __init__(self, key: str) -> None:
        super().__init__(f"Flag '{key}' is archived; it cannot be turned on or retargeted.")
        self.key = key


class InvalidFlagInput(FlagServiceError):
    """Bad key, rules, percentage or token settings."""
