"""A Gradio Space running s3-hf: the app is ``s3_hf.app.ui``; its settings are the Space's variables (README.md)."""

from s3_hf.app.ui import main

if __name__ == "__main__":
    main()
