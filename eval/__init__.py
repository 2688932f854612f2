"""`s3 eval` and `s3 bench`: benchmarks, the evaluation runner, reports and throughput measurements.

Installed as ``s3_hf.eval`` (the repository's ``eval/`` folder; ``s3_hf/eval`` links to it). Only the CLI's
``eval``, ``bench`` and ``card`` commands import it; the library never does.
"""

__all__ = ["bench", "registry", "report", "runner"]
