"""Typed errors. Every message says what was wrong and what to do about it."""

from __future__ import annotations


class S3Error(Exception):
    """Base class of every error raised by s3_hf."""


class InvalidLabelsError(S3Error, ValueError):
    """The class labels are empty, duplicated, blank or too long for the tokenizer."""


class SynonymsError(S3Error, ValueError):
    """A synonyms mapping or file is malformed or names labels that are not classes."""


class TemplateError(S3Error, ValueError):
    """A prompt template or template set is invalid."""


class InvalidConfigError(S3Error, ValueError):
    """A build or scoring option (metric, radius rule, ...) is invalid."""


class BackgroundMissingError(InvalidConfigError):
    """A segmentation background rule (probability or area threshold) has no background class to send pixels to."""


class ImageLoadError(S3Error, ValueError):
    """An input image cannot be read or decoded."""


class ImageTooLargeError(ImageLoadError):
    """An input image is larger, or more elongated, than the operator limits allow (see :mod:`s3_hf.limits`)."""


class ArtifactError(S3Error):
    """Base class of errors about a saved synonym-space artifact."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """The artifact folder, Hub repository or one of its files does not exist."""


class ArtifactCorruptError(ArtifactError):
    """An artifact file cannot be parsed (truncated, not JSON, not safetensors)."""


class ArtifactShapeError(ArtifactError):
    """Tensors in an artifact have the wrong shape or dtype, or inconsistent indices."""


class ArtifactValueError(ArtifactError):
    """An artifact holds non-finite or out-of-range values."""


class SpaceTooLargeError(ArtifactValueError):
    """Scoring with a space would need more memory than the operator limit allows (see :mod:`s3_hf.limits`)."""


class FormatVersionError(ArtifactError):
    """The artifact was written in a format version this release cannot read."""


class ModelMismatchError(ArtifactError):
    """The artifact was built for another base model or embedding size."""


class AdapterMismatchError(ModelMismatchError):
    """A few-shot adapter was fitted on another synonym space (its recorded tensor hash differs)."""


class HubError(S3Error):
    """Talking to the Hugging Face Hub failed (no token, no network, no access)."""


class UnsupportedModelError(S3Error, ValueError):
    """The model is not a dual encoder S^3 can score with (its family scores jointly, or takes no images)."""


class ModelLoadError(S3Error):
    """A CLIP checkpoint cannot be loaded."""


class RemoteCodeError(ModelLoadError):
    """A checkpoint asks to run its own Python code (``auto_map``), which s3-hf never does."""


class SynonymSourceError(S3Error):
    """A synonym source is misconfigured (bad credentials, unknown model, unreachable server)."""


class WordNetMissingError(SynonymSourceError):
    """The WordNet corpus is not installed."""


class EvalError(S3Error):
    """An evaluation or benchmark run is missing what it needs (a data location, a model) or is misconfigured."""


class CLIUsageError(S3Error, ValueError):
    """The ``s3`` command was given a combination of arguments it cannot act on."""


class SpaceBuildError(S3Error):
    """A Gradio Space folder cannot be written or is not one ``s3 space build`` wrote."""


class UnknownProtocolError(InvalidConfigError):
    """A segmentation protocol name that is not one of ``s3_hf.segmentation.protocols.PROTOCOLS``."""


class StreamStateError(S3Error, ValueError):
    """A saved test-time adaptation state cannot be loaded: damaged, incomplete or inconsistent. Nothing is loaded."""


class StreamMismatchError(StreamStateError):
    """A test-time adaptation stream, or a saved state, is used with other labels, model, space or options than it
    was made with."""


class ProtocolBenchmarkError(InvalidConfigError):
    """A reference segmentation protocol has no published values for the benchmark (or it is unnamed)."""


__all__ = [
    "AdapterMismatchError",
    "ArtifactCorruptError",
    "ArtifactError",
    "ArtifactNotFoundError",
    "ArtifactShapeError",
    "ArtifactValueError",
    "BackgroundMissingError",
    "CLIUsageError",
    "EvalError",
    "FormatVersionError",
    "HubError",
    "ImageLoadError",
    "ImageTooLargeError",
    "InvalidConfigError",
    "InvalidLabelsError",
    "ModelLoadError",
    "ModelMismatchError",
    "ProtocolBenchmarkError",
    "RemoteCodeError",
    "S3Error",
    "SpaceBuildError",
    "SpaceTooLargeError",
    "StreamMismatchError",
    "StreamStateError",
    "SynonymSourceError",
    "SynonymsError",
    "TemplateError",
    "UnknownProtocolError",
    "UnsupportedModelError",
    "WordNetMissingError",
]
