"""Lambda entry point of the webhook function; the code lives in the shared `ghapt` layer."""

from ghapt.aws.handlers import webhook_handler as lambda_handler

__all__ = ["lambda_handler"]
