"""Evaluation data: the benchmark registry, Hub shards, image folders and segmentation folders."""
