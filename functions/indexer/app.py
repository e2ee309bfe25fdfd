"""Lambda entry point of the indexer function; the code lives in the shared `ghapt` layer."""

from ghapt.aws.handlers import indexer_handler as lambda_handler

__all__ = ["lambda_handler"]
