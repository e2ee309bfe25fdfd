"""Lambda entry point of the metadata function; the code lives in the shared `ghapt` layer."""

from ghapt.aws.handlers import metadata_handler as lambda_handler

__all__ = ["lambda_handler"]
