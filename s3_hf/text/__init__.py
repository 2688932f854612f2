"""Texts: label checks (labels), prompt templates (templates), concept texts and prompts -> vectors (encoding)."""
