"""Lambda entry point of the authorizer function; the code lives in the shared `ghapt` layer."""

from ghapt.aws.handlers import authorizer_handler as lambda_handler

__all__ = ["lambda_handler"]
