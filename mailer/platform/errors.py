"""Errors a user can cause: domain exceptions, never a 500 (views/errors.py renders them)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a state the user can fix; never a 500."""

    status = 400
    title = "Something is not right"
    offer_signup = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(UserError):
    title = "Please check what you entered"


class UnsupportedContentType(UserError):
    status = 415
    title = "Unsupported request"


class NotFound(UserError):
    status = 404
    title = "Not found"
