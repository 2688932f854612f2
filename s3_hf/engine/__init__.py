"""The service layer under every face: S3Engine resolves and caches spaces and adapters, and scores."""

from s3_hf.engine.core import *  # noqa: F403
from s3_hf.engine.core import __all__  # noqa: F401
