"""The transformers pipeline faces, one module per task, and their lazy registration (tasks)."""
