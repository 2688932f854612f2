"""`s3 eval` and `s3 bench`: benchmarks, the evaluation runner, reports and throughput measurements.

A face over the engine: only the CLI's ``eval``, ``bench`` and ``card`` commands import it; the library never does.
"""
