"""The ``s3`` command line."""

from s3_hf.cli.commands import main

__all__ = ["main"]
