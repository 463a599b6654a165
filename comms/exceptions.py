"""What the comms services refuse, with sentences a person can act on. Views map them to 400,
404 and 409."""

from __future__ import annotations


class CommsError(Exception):
    status = 400


class InvalidInput(CommsError):
    status = 400


class NotFound(CommsError):
    status = 404


class Conflict(CommsError):
    """The row is not in a state that allows this (a draft already sent, a delivery not
    failed)."""

    status = 409
