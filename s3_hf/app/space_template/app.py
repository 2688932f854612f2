"""A Gradio Space running s3-hf: the app is ``s3_hf.app.ui``; its settings are the Space's variables (README.md).

``DEFAULTS`` are the settings ``s3 space build`` was given (``--model``, ``--space``); a Space variable of the same
name overrides them. The app reads its settings when it starts (``main``), not when it is imported.
"""

import os

try:  # ZeroGPU: the package must be imported before anything initialises CUDA; elsewhere it need not be installed
    import spaces  # noqa: F401
except ImportError:
    pass

from s3_hf.app.ui import main

DEFAULTS: dict[str, str] = {}

for _name, _value in DEFAULTS.items():
    os.environ.setdefault(_name, _value)

if __name__ == "__main__":
    main()
