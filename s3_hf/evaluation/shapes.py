"""Full-size random-weight checkpoints of other families for timing and memory work (``s3 bench``).

A shapes folder holds a model configuration with the published sizes, a tokenizer and an image processor, but no
weights: the engine's loader initialises it at random. Scores from it mean nothing; timings do. The tokenizer is
borrowed from a folder the user gives (SigLIP's own SentencePiece tokenizer cannot be had offline); the vocabulary
size follows that tokenizer, which changes only the size of the token-embedding table, not the cost per token.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from s3_hf.errors import EvalError

# Sizes of google/siglip-base-patch16-224 and google/siglip2-base-patch16-224, from their public configurations.
_BASE_TOWER = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}
SHAPES: dict[str, dict[str, Any]] = {
    "siglip-base-patch16-224": {
        "family": "siglip",
        "text": {**_BASE_TOWER, "max_position_embeddings": 64},
        "vision": {**_BASE_TOWER, "image_size": 224, "patch_size": 16},
    },
    "siglip2-base-patch16-224": {
        "family": "siglip2",
        "text": {**_BASE_TOWER, "max_position_embeddings": 64},
        "vision": {**_BASE_TOWER, "num_patches": 196, "patch_size": 16},
    },
}


def write_shapes(name: str, out: str | os.PathLike, tokenizer_from: str | os.PathLike) -> Path:
    """Write the shapes folder ``name`` (a key of :data:`SHAPES`) to ``out``, with the tokenizer of
    ``tokenizer_from`` (a folder holding one, such as a CLIP checkpoint)."""
    from transformers import (
        AutoTokenizer,
        Siglip2Config,
        Siglip2ImageProcessor,
        SiglipConfig,
        SiglipImageProcessor,
    )

    if name not in SHAPES:
        raise EvalError(f"Unknown shapes {name!r}; choose one of {', '.join(SHAPES)}.")
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_from, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise EvalError(f"Cannot read a tokenizer from {tokenizer_from}: {err}. Pass a folder that holds one.") from err
    spec = SHAPES[name]
    ids = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id}
    ids.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    if spec["family"] == "siglip":
        config: Any = SiglipConfig(text_config={**spec["text"], **ids}, vision_config=spec["vision"])
        processor: Any = SiglipImageProcessor(size={"height": 224, "width": 224})
    else:
        config = Siglip2Config(text_config={**spec["text"], **ids}, vision_config=spec["vision"])
        processor = Siglip2ImageProcessor(patch_size=16, max_num_patches=196)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


__all__ = ["SHAPES", "write_shapes"]
