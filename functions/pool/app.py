"""Lambda entry point of the pool function; the code lives in the shared `ghapt` layer."""

from ghapt.aws.handlers import pool_handler as lambda_handler

__all__ = ["lambda_handler"]
