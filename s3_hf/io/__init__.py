"""Input and output: atomic files (files), the one Hub download and upload path (hub), image reading (images) and
image workers (parallel)."""
