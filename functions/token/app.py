"""Lambda entry point of the token-exchange function; the code lives in the shared `ghapt` layer."""

from ghapt.aws.handlers import token_handler as lambda_handler

__all__ = ["lambda_handler"]
