"""Helpers shared by the tests: tiny random CLIP checkpoints, the shared data folder, synonym fixtures, points on
a circle with known geometry, and an in-process fake of the Hub's HTTP endpoints plugged into huggingface_hub."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import string
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import huggingface_hub
import numpy as np
import pytest
import torch
from huggingface_hub import constants
from huggingface_hub.utils._http import default_client_factory

if TYPE_CHECKING:
    from s3_hf import SynonymSpace

# The project's read-only data folder beside the repository (absent on a fresh machine: tests using it skip).
SHARED = Path(__file__).resolve().parents[1].parent / "shared"

SYNONYMS = {
    "cat": ["domestic cat", "house cat", "kitty", "tabby", "feline"],
    "dog": ["puppy", "hound", "canine", "pooch"],
    "airplane": ["aeroplane", "plane", "airliner", "jet"],
}


def char_tokenizer(model_max_length: int = 77):
    """A character-level CLIP tokenizer (lower-case letters, digits, punctuation)."""
    from transformers import CLIPTokenizer

    chars = string.ascii_lowercase + string.digits + string.punctuation
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def make_tiny_clip(path: Path, seed: int = 0, projection_dim: int = 16) -> Path:
    """Save a tiny random CLIPModel with a character-level CLIP tokenizer and a 32px image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tokenizer = char_tokenizer()
    vocab = tokenizer.get_vocab()
    eos = vocab["<|endoftext|>"]
    layers = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    config = CLIPConfig(
        text_config={
            **layers,
            "vocab_size": len(vocab),
            "max_position_embeddings": 77,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": eos,
            "pad_token_id": eos,
        },
        vision_config={**layers, "image_size": 32, "patch_size": 8},
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    processor.save_pretrained(path)
    return path


# ----------------------------------------------------------------------------------------- known geometry
def arc(*degrees: float, dim: int = 3) -> np.ndarray:
    """Unit vectors on a great circle at the given angles."""
    out = np.zeros((len(degrees), dim))
    rad = np.radians(degrees)
    out[:, 0], out[:, 1] = np.cos(rad), np.sin(rad)
    return out


# label at 0°, synonyms at 10°, 20°, 35°, and an outlier at 130°
ANGLES = (0, 10, 20, 35, 130)


# ------------------------------------------------------------------------------------------------ fake Hub
COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RESOLVE = re.compile(r"^/(?:(?:datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_API = re.compile(r"^/api/(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)/(?P<op>preupload|commit)/(?P<rev>.+)$")
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
# repo_info and list_repo_tree: how huggingface_hub (and datasets, for a repo id) list a repo's files
_REPO_API = re.compile(
    r"^/api/(?:model|dataset|space)s/(?P<repo>[^/]+/[^/]+)"
    r"(?:/(?P<op>revision|tree)/(?P<rev>[^/]+)(?:/(?P<path>.+))?)?$"
)


class FakeHub:
    """Serves ``{repo_id: {filename: bytes}}`` at ``/[datasets/|spaces/]{repo}/resolve/{revision}/{file}`` (any repo
    type), lists them at the repo-info and tree APIs; logs every request."""

    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.repos = repos
        self.requests: list[tuple[str, str]] = []
        self.created: list[dict] = []  # create_repo payloads
        # {"repo_type", "repo_id", "revision", "summary", "files": {path: bytes}, "deleted": [path, ...]}
        self.commits: list[dict] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append((request.method, request.url.path))
        if request.url.path.startswith("/api/"):
            return self.handle_api(request)
        m = _RESOLVE.match(request.url.path)
        if not m:
            return httpx2.Response(404, headers={"X-Error-Code": "RepoNotFound"}, request=request)
        repo = self.repos.get(m["repo"])
        if repo is None:
            return httpx2.Response(
                401,
                headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
                request=request,
            )
        if m["rev"] not in ("main", COMMIT):
            return httpx2.Response(404, headers={"X-Error-Code": "RevisionNotFound"}, request=request)
        data = repo.get(m["file"])
        if data is None:
            return httpx2.Response(
                404, headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}, request=request
            )
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            "Content-Length": str(len(data)),
        }
        body = b"" if request.method == "HEAD" else data
        return httpx2.Response(200, headers=headers, content=body, request=request)

    def handle_api(self, request: httpx2.Request) -> httpx2.Response:
        """create_repo, and upload_folder's README check, preupload and commit (every file a regular, inline blob).
        A commit to a model repo applies its deletions, then its files, which become downloadable from it; a
        deletion of a file the repo does not hold fails the whole commit, as on the Hub."""
        if request.method == "POST" and request.url.path == "/api/repos/create":
            payload = json.loads(request.content)
            self.created.append(payload)
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            if (payload.get("type") or "model") == "model":
                self.repos.setdefault(repo_id, {})  # an empty model repo, listed and committed to like any
            prefix = _URL_PREFIX[payload.get("type") or "model"]
            return httpx2.Response(200, json={"url": f"{constants.ENDPOINT}/{prefix}{repo_id}"}, request=request)
        if request.method == "POST" and request.url.path == "/api/validate-yaml":  # upload_folder checks README.md
            return httpx2.Response(200, json={"warnings": []}, request=request)
        info = _REPO_API.match(request.url.path)
        if info:
            return self.handle_repo_info(request, info)
        m = _API.match(request.url.path)
        if request.method != "POST" or not m:
            return httpx2.Response(404, headers={"X-Error-Code": "RepoNotFound"}, request=request)
        if m["op"] == "preupload":
            files = json.loads(request.content)["files"]
            modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
            return httpx2.Response(200, json={"files": modes}, request=request)
        lines = [json.loads(line) for line in request.content.decode().splitlines() if line.strip()]
        files = {x["value"]["path"]: base64.b64decode(x["value"]["content"]) for x in lines if x["key"] == "file"}
        deleted = [x["value"]["path"] for x in lines if x["key"] in ("deletedFile", "deletedFolder")]
        repo_type = m["type"]
        summary = next(x["value"]["summary"] for x in lines if x["key"] == "header")
        self.commits.append(
            {
                "repo_type": repo_type,
                "repo_id": m["repo"],
                "revision": m["rev"],
                "summary": summary,
                "files": files,
                "deleted": deleted,
            }
        )
        if repo_type == "model":
            repo = self.repos.setdefault(m["repo"], {})
            missing = [path for path in deleted if not self._delete(repo, path)]
            if missing:  # the Hub refuses a commit deleting what the repo does not hold, and applies none of it
                return httpx2.Response(
                    404,
                    headers={"X-Error-Code": "EntryNotFound", "X-Error-Message": f"{missing} not found"},
                    request=request,
                )
            repo.update(files)
        url = f"{constants.ENDPOINT}/{_URL_PREFIX[repo_type]}{m['repo']}/commit/{COMMIT}"
        body = {"commitUrl": url, "commitOid": COMMIT, "pullRequestUrl": None}
        return httpx2.Response(200, json=body, request=request)

    @staticmethod
    def _delete(repo: dict[str, bytes], path: str) -> bool:
        """Delete a file, or a folder (``path`` ending in ``/``) with everything in it; whether there was one."""
        names = [n for n in repo if n.startswith(path)] if path.endswith("/") else [path] * (path in repo)
        for name in names:
            del repo[name]
        return bool(names)

    def handle_repo_info(self, request: httpx2.Request, m: re.Match) -> httpx2.Response:
        """A repo's info (its files as siblings) and its tree (one folder level, or recursive)."""
        repo = self.repos.get(m["repo"])
        if repo is None:
            return httpx2.Response(404, headers={"X-Error-Code": "RepoNotFound"}, request=request)
        if m["rev"] not in (None, "main", COMMIT):
            return httpx2.Response(404, headers={"X-Error-Code": "RevisionNotFound"}, request=request)
        folders = {"/".join(name.split("/")[:i]) for name in repo for i in range(1, name.count("/") + 1)}

        def entry(path: str) -> dict:
            if path in folders:
                return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}
            data = repo[path]
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            lfs = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            return {"type": "file", "oid": blob, "size": len(data), "path": path, "lfs": lfs}

        if m["op"] in (None, "revision"):
            body = {"id": m["repo"], "sha": COMMIT, "private": False, "siblings": [{"rfilename": f} for f in repo]}
            return httpx2.Response(200, json=body, request=request)
        base = (m["path"] or "").strip("/")
        if base and base not in folders:
            return httpx2.Response(404, headers={"X-Error-Code": "EntryNotFound"}, request=request)
        recursive = request.url.params.get("recursive", "false").lower() == "true"
        under = [p for p in sorted(set(repo) | folders) if not base or p.startswith(base + "/")]
        depth = base.count("/") + 1 if base else 0
        listed = under if recursive else [p for p in under if p.count("/") == depth]
        return httpx2.Response(200, json=[entry(p) for p in listed], request=request)


@contextmanager
def fake_hub(repos: dict[str, dict[str, bytes]]) -> Iterator[FakeHub]:
    """Route huggingface_hub's HTTP traffic to a :class:`FakeHub`; offline mode is switched off meanwhile."""
    hub = FakeHub(repos)
    offline = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    huggingface_hub.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(hub.handle)))
    try:
        yield hub
    finally:
        constants.HF_HUB_OFFLINE = offline
        huggingface_hub.set_client_factory(default_client_factory)


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def make_tiny_family(path: Path, family: str, seed: int = 0) -> Path:
    """Save a tiny random checkpoint of another zero-shot family (``"siglip"``, ``"siglip2"``, ``"metaclip_2"``,
    ``"clipseg"``, ``"align"``, ``"altclip"``, ``"blip"``, ``"chinese_clip"``, ``"tipsv2"``) with a character-level
    tokenizer of the family's tokenizer class (CLIP BPE, BERT WordPiece, XLM-R Unigram, TIPSv2 BPE) and the family's
    own image processor."""
    from transformers import (
        AlignConfig,
        AlignModel,
        AltCLIPConfig,
        AltCLIPModel,
        BertTokenizer,
        BlipConfig,
        BlipImageProcessor,
        BlipModel,
        ChineseCLIPConfig,
        ChineseCLIPImageProcessor,
        ChineseCLIPModel,
        CLIPImageProcessor,
        CLIPSegConfig,
        CLIPSegModel,
        EfficientNetImageProcessor,
        MetaClip2Config,
        MetaClip2Model,
        Siglip2Config,
        Siglip2ImageProcessor,
        Siglip2Model,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
        Tipsv2Config,
        Tipsv2Model,
        Tipsv2Tokenizer,
        ViTImageProcessor,
        XLMRobertaTokenizer,
    )

    chars = string.ascii_lowercase + string.digits + string.punctuation
    tokenizer = char_tokenizer(model_max_length=64)
    vocab = tokenizer.get_vocab()
    layers = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    special = {
        "vocab_size": len(vocab),
        "bos_token_id": vocab["<|startoftext|>"],
        "eos_token_id": vocab["<|endoftext|>"],
        "pad_token_id": vocab["<|endoftext|>"],
    }
    vision = {**layers, "image_size": 32, "patch_size": 8}
    clip_pixels = {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}}
    if family in ("align", "blip", "chinese_clip"):  # BERT text towers: a WordPiece vocabulary written to a file
        words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
        path.mkdir(parents=True, exist_ok=True)
        (path / "vocab.txt").write_text("\n".join(words) + "\n")
        tokenizer = BertTokenizer(vocab=str(path / "vocab.txt"), model_max_length=64)
        bert = {**layers, "vocab_size": len(words), "max_position_embeddings": 64, "pad_token_id": 0}
    torch.manual_seed(seed)
    if family == "siglip":
        config = SiglipConfig(
            text_config={**layers, **special, "max_position_embeddings": 64},
            vision_config=vision,
        )
        model = SiglipModel(config)
        processor = SiglipImageProcessor(size={"height": 32, "width": 32})
    elif family == "siglip2":
        config = Siglip2Config(
            text_config={**layers, **special, "max_position_embeddings": 64},
            vision_config={**layers, "num_patches": 16, "patch_size": 8},
        )
        model = Siglip2Model(config)
        processor = Siglip2ImageProcessor(patch_size=8, max_num_patches=16)
    elif family == "metaclip_2":
        config = MetaClip2Config(
            text_config={**layers, **special, "max_position_embeddings": 64},
            vision_config=vision,
            projection_dim=16,
        )
        model = MetaClip2Model(config)
        processor = CLIPImageProcessor(**clip_pixels)
    elif family == "clipseg":
        config = CLIPSegConfig(
            text_config={**layers, **special, "max_position_embeddings": 64},
            vision_config=vision,
            projection_dim=16,
            extract_layers=[1],
        )
        model = CLIPSegModel(config)
        processor = ViTImageProcessor(size={"height": 32, "width": 32})
    elif family == "align":  # EfficientNet vision tower: its last stage's width is the joint space's size
        config = AlignConfig(
            text_config=bert,
            vision_config={
                "image_size": 32,
                "width_coefficient": 0.1,
                "depth_coefficient": 0.1,
                # two stages, not seven: every convolution costs time on a CPU, however small
                "kernel_sizes": [3, 3],
                "in_channels": [32, 16],
                "out_channels": [16, 160],
                "strides": [2, 2],
                "num_block_repeats": [1, 1],
                "expand_ratios": [1, 6],
                "initializer_range": 0.5,  # the default 0.02 fades a narrow EfficientNet's activations to zero
                "hidden_dim": 8,  # the mean-pooling window: wider than the last feature map, as the default is
            },
            projection_dim=16,
        )
        model = AlignModel(config)
        processor = EfficientNetImageProcessor(size={"height": 32, "width": 32})
    elif family == "altclip":  # an XLM-R Unigram vocabulary; positions start after the padding index
        pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581", *chars, *(f"\u2581{c}" for c in chars), "<mask>"]
        tokenizer = XLMRobertaTokenizer(vocab=[(p, -1.0) for p in pieces], model_max_length=64)
        text = {**layers, "vocab_size": len(pieces), "max_position_embeddings": 66, "project_dim": 24}
        config = AltCLIPConfig(
            text_config={**text, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2},
            vision_config=vision,
            projection_dim=16,
        )
        model = AltCLIPModel(config)
        processor = CLIPImageProcessor(**clip_pixels)
    elif family == "blip":
        text = {**bert, "bos_token_id": 2, "eos_token_id": 3, "sep_token_id": 3}  # [CLS], [SEP]
        config = BlipConfig(text_config=text, vision_config=vision, projection_dim=16)
        model = BlipModel(config)
        processor = BlipImageProcessor(size={"height": 32, "width": 32})
    elif family == "chinese_clip":
        config = ChineseCLIPConfig(text_config=bert, vision_config=vision, projection_dim=16)
        model = ChineseCLIPModel(config)
        processor = ChineseCLIPImageProcessor(**clip_pixels)
    elif family == "tipsv2":  # no projection: both towers are 32 wide
        pieces = ["<pad>", "<unk>", "\u2581", *chars]
        tokenizer = Tipsv2Tokenizer(vocab={p: i for i, p in enumerate(pieces)}, merges=[], model_max_length=64)
        config = Tipsv2Config(
            text_config={**layers, "vocab_size": len(pieces), "max_position_embeddings": 64, "pad_token_id": 0},
            vision_config={**vision, "mlp_ratio": 1},
        )
        model = Tipsv2Model(config)
        # Tipsv2ImageProcessor needs torchvision; this one does the same (bilinear resize, rescale, no normalising)
        processor = ViTImageProcessor(size={"height": 32, "width": 32}, resample=2, do_normalize=False)
    else:
        raise ValueError(family)
    with torch.no_grad():  # random logit scale (or temperature) and bias, so a test sees whether they are applied
        if getattr(model, "temperature", None) is not None:
            model.temperature.fill_(0.3)
        else:
            model.logit_scale.fill_(1.7)
        if getattr(model, "logit_bias", None) is not None:
            model.logit_bias.fill_(-0.8)
    model.eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def make_tiny_open_clip(path: Path, seed: int = 0, weights: bool = True, logit_bias: float | None = None) -> Path:
    """Save a tiny random open_clip ViT, created offline from its config: ``open_clip_config.json`` and, with
    ``weights``, ``open_clip_model.safetensors``. ``logit_bias`` makes a SigLIP-style model (scored with a sigmoid)."""
    import open_clip
    from safetensors.torch import save_file

    model_cfg: dict = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
    }
    if logit_bias is not None:
        model_cfg["init_logit_bias"] = logit_bias
    path.mkdir(parents=True, exist_ok=True)
    (path / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}))
    if weights:
        torch.manual_seed(seed)
        model = open_clip.create_model(f"local-dir:{path}")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "open_clip_model.safetensors"))
    return path


def planted_seg_folder(root: Path, photos: list[Path], class_lines: list[str]) -> Path:
    """A segmentation benchmark folder: the first two photos at 48x40 in ``images/``, masks in ``masks/`` whose right
    half is class 8 and 9, and ``classes.txt`` with one line a class."""
    import numpy as np
    from PIL import Image

    (root / "images").mkdir()
    (root / "masks").mkdir()
    for i, p in enumerate(photos[:2]):
        Image.open(p).convert("RGB").resize((48, 40)).save(root / "images" / f"{i}.png")
        mask = np.zeros((40, 48), dtype=np.uint8)
        mask[:, 24:] = 8 + i
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    (root / "classes.txt").write_text("\n".join(class_lines) + "\n")
    return root


def crafted_space(sizes: list[int], dim: int = 512, seed: int = 0) -> SynonymSpace:
    """A valid space of random unit points, ``sizes[c]`` points in class ``c``, each point its own neighbourhood."""
    from s3_hf import SynonymSpace
    from s3_hf.space.artifact import S3Config
    from s3_hf.space.geometry import SpaceTensors
    from s3_hf.space.records import ClassRecord, ConceptRecord

    g = torch.Generator().manual_seed(seed)
    p = sum(sizes)
    points = torch.nn.functional.normalize(torch.randn(p, dim, generator=g), dim=-1)
    point_class = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    starts = torch.cumsum(torch.tensor(sizes), 0) - torch.tensor(sizes)
    centres = torch.stack([points[a : a + n].mean(0) for a, n in zip(starts.tolist(), sizes, strict=True)])
    tensors = SpaceTensors(
        points=points,
        point_class=point_class,
        kept=torch.ones(p, dtype=torch.bool),
        radius=torch.full((len(sizes),), 0.5, dtype=torch.float64),
        global_centres=torch.nn.functional.normalize(centres, dim=-1),
        neighbour_indptr=torch.arange(p + 1),
        neighbour_indices=torch.arange(p),
        simplex_indptr=torch.arange(p + 1),
        simplex_vertices=torch.arange(p),
    )
    names = [f"class {c}" for c in range(len(sizes))]
    classes = [
        ClassRecord(name, [ConceptRecord(f"{name} concept {j}", True) for j in range(n)], 0.5, [], {})
        for name, n in zip(names, sizes, strict=True)
    ]
    config = S3Config(base_model="tiny", embedding_dim=dim, class_names=names, templates=["{}"], concept_format="{}")
    return SynonymSpace(config, classes, tensors)


def png(width: int, height: int) -> bytes:
    """A plain RGB PNG of the given size."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (120, 80, 40)).save(out, "PNG")
    return out.getvalue()


def run_eval(args: list[str], nproc: int, cwd: Path) -> None:
    """``s3 eval`` with ``args`` in ``nproc`` processes (``torch.distributed.run`` when more than one), offline."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"] if nproc > 1 else [sys.executable]
    )
    res = subprocess.run(
        [*launcher, "-m", "s3_hf.cli", "eval", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-3000:]


def assert_same_results(one: Any, two: Any, where: str = "results") -> None:
    """Two runs' results are the same: equal keys, labels, counts and accuracies, and floats equal to 1e-5
    relative (1e-6 absolute).

    Accuracies are multiples of 1/N, so the tolerance hides no disagreement in them; it is there for the
    probability-based figures (ECE, NLL), which sum float32 probabilities whose last bits depend on how many
    threads encoded the images (1 process or 2 sharing the cores), a difference SSP's subspaces carry on."""
    if isinstance(one, dict) and isinstance(two, dict):
        assert one.keys() == two.keys(), f"{where}: keys {sorted(one)} != {sorted(two)}"
        for key in one:
            assert_same_results(one[key], two[key], f"{where}.{key}")
    elif isinstance(one, list) and isinstance(two, list):
        assert len(one) == len(two), f"{where}: {len(one)} items != {len(two)}"
        for i, (a, b) in enumerate(zip(one, two, strict=True)):
            assert_same_results(a, b, f"{where}[{i}]")
    elif isinstance(one, float) and isinstance(two, float):
        assert one == pytest.approx(two, rel=1e-5, abs=1e-6, nan_ok=True), f"{where}: {one} != {two}"
    else:
        assert one == two, f"{where}: {one!r} != {two!r}"
