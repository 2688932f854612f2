"""``python -m s3_hf.cli`` (and ``accelerate launch -m s3_hf.cli eval``): the ``s3`` command."""

import sys

from s3_hf.cli import main

sys.exit(main())
