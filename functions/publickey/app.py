"""Lambda entry point of the publickey function; the code lives in the shared `ghapt` layer."""

from ghapt.aws.handlers import publickey_handler as lambda_handler

__all__ = ["lambda_handler"]
