"""Open-vocabulary segmentation: per-pixel logits, label maps, masks and rendering (core), the protocol presets
(protocols) and PAMR post-processing (pamr)."""
