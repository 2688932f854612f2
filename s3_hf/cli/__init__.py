"""The ``s3`` command line: one module per sub-command (its parser and its handler side by side), the argument
groups they share (:mod:`s3_hf.cli.arguments`), their shared helpers (:mod:`s3_hf.cli.common`) and the command
itself (:mod:`s3_hf.cli.s3`)."""

from s3_hf.cli.common import load_engine, load_eval_module, read_label_table, read_labels
from s3_hf.cli.s3 import build_parser, main

__all__ = ["build_parser", "load_engine", "load_eval_module", "main", "read_label_table", "read_labels"]
