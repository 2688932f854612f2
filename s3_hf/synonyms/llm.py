"""LLM synonym sources: the versioned prompt, caching and per-label fallback, and the transformers back end."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tqdm.auto import tqdm

from s3_hf.errors import SynonymSourceError
from s3_hf.synonyms.base import MAX_CONCEPTS, MAX_DESCRIPTORS, clean_all, clean_descriptors
from s3_hf.synonyms.cache import SynonymCache
from s3_hf.synonyms.parsing import parse_answer

logger = logging.getLogger(__name__)

PROMPT_VERSION = "s3-synonyms-v1"
MAX_CONTEXT_CLASSES = 60  # more class names than this are not listed in the prompt (cleaning still drops collisions)

SYSTEM_PROMPT = "You name visual categories for a zero-shot image classifier. You answer with JSON only, no commentary."

Messages = list[dict[str, str]]


def build_messages(
    label: str,
    max_synonyms: int = MAX_CONCEPTS,
    domain: str | None = None,
    other_labels: Sequence[str] = (),
    descriptors: bool = False,
) -> Messages:
    """The chat messages asking for synonyms of one label (``PROMPT_VERSION``), and with ``descriptors`` also for
    up to :data:`~s3_hf.synonyms.base.MAX_DESCRIPTORS` short visual descriptors."""
    where = f" in a dataset of {domain}" if domain else ""
    lines = [
        f'List up to {max_synonyms} synonymous names for the visual category "{label}"{where}.',
        "Rules:",
        f'- each name denotes exactly the same kind of thing as "{label}", so a photo of one is a photo of the other;',
        "- at most five words per name;",
        "- no broader categories (hypernyms), no parts, no attributes, no descriptions;",
        f'- do not repeat "{label}" itself.',
    ]
    others = [o for o in other_labels if o != label]
    if others and len(others) <= MAX_CONTEXT_CLASSES:
        lines.append(
            "The other classes of this dataset are: " + "; ".join(others) + ". Give no name that also fits one of them."
        )
    if descriptors:
        lines.append(
            f'Also list up to {MAX_DESCRIPTORS} short visual descriptors of "{label}" (at most eight words each, what '
            'a photo shows, as noun phrases such as "pointed ears").'
        )
        lines.append('Answer as JSON: {"synonyms": ["...", ...], "descriptors": ["...", ...]}')
    else:
        lines.append('Answer as JSON: {"synonyms": ["...", ...]}')
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


@dataclass(frozen=True)
class FailedRequest:
    """What ``_generate`` returns for a label whose request failed: the cause, quoted in the fallback warning."""

    reason: str


def _parse(answer: object) -> list[str] | None:
    """The synonyms of an answer; ``None`` unless it is text that parses into a list of strings."""
    return _parse_both(answer)[0]


def _parse_both(answer: object) -> tuple[list[str] | None, list[str]]:
    """(synonyms or ``None``, descriptors) of an answer."""
    if not isinstance(answer, str):
        return None, []
    try:
        syn, desc = parse_answer(answer)
    except (ValueError, RecursionError):
        return None, []
    ok = isinstance(syn, list) and all(isinstance(x, str) for x in syn)
    desc = [d for d in desc if isinstance(d, str)] if isinstance(desc, list) else []
    return (syn if ok else None), desc


class LLMSource:
    """Shared logic of LLM sources: prompts, the cache, parsing, cleaning and the per-label fallback.

    Subclasses implement ``_generate(list of messages) -> list of answer texts`` (a ``FailedRequest`` with the
    cause, or ``None``, where a request failed after its retries) and ``settings()`` (model and decoding
    settings, part of the cache key). A label whose request failed or whose answer yields no usable synonym
    falls back to label-only with a warning naming the label and the cause; one bad label never aborts a run.
    Only answers that are text parsing into a list of strings are cached, so a re-run asks again for the others;
    a cache entry that is not such an answer is ignored (and replaced by the next one).
    """

    name = "llm"

    def __init__(
        self,
        max_synonyms: int = MAX_CONCEPTS,
        domain: str | None = None,
        cache: SynonymCache | str | bool | None = True,
        progress: bool = False,
        descriptors: bool = False,
    ) -> None:
        self.max_synonyms = max_synonyms
        self.domain = domain
        self.ask_descriptors = descriptors
        self._descriptors: dict[str, list[str]] = {}
        if cache is True or cache is None:
            self.cache: SynonymCache | None = SynonymCache()
        elif cache is False:
            self.cache = None
        else:
            self.cache = cache if isinstance(cache, SynonymCache) else SynonymCache(cache)
        self.progress = progress
        self.fallbacks: list[str] = []  # labels of the last call that fell back to label-only
        self._date = datetime.now(UTC).isoformat(timespec="seconds")

    # --------------------------------------------------------------------------- for subclasses
    def settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def _generate(self, batch: list[Messages]) -> list[str | FailedRequest | None]:
        raise NotImplementedError

    batch_size = 8  # labels per _generate call

    # ------------------------------------------------------------------------------ protocol
    def provenance(self) -> dict[str, Any]:
        prov = {"name": self.name, **self.settings(), "prompt_version": PROMPT_VERSION, "date": self._date}
        if self.ask_descriptors:
            prov["descriptors"] = True
        return prov

    def synonyms(self, labels: Sequence[str]) -> dict[str, list[str]]:
        labels = list(labels)
        settings = self.settings()
        answers: dict[str, str] = {}
        parsed: dict[str, list[str]] = {}
        failures: dict[str, str] = {}
        todo: list[tuple[str, Messages, str]] = []
        for label in labels:
            messages = build_messages(label, self.max_synonyms, self.domain, labels, self.ask_descriptors)
            key = SynonymCache.key(
                source=self.name, settings=settings, prompt=PROMPT_VERSION, label=label, messages=messages
            )
            entry = self.cache.get(key) if self.cache else None
            answer = entry.get("answer") if isinstance(entry, dict) else None
            syn = _parse(answer)
            if isinstance(answer, str) and syn is not None:
                answers[label], parsed[label] = answer, syn
                continue
            if entry is not None:
                logger.warning("Ignoring a malformed cache entry for label %r; asking again.", label)
            todo.append((label, messages, key))
        bar = tqdm(total=len(todo), desc=f"Asking {self.name} for synonyms", disable=not self.progress or not todo)
        cache_ok = True
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            results = self._generate([m for _, m, _ in chunk])
            for (label, _, key), answer in zip(chunk, results, strict=True):
                syn = _parse(answer)
                if not isinstance(answer, str) or syn is None:
                    failures[label] = _failure_reason(answer)
                    continue
                answers[label], parsed[label] = answer, syn
                if self.cache and cache_ok:
                    try:
                        self.cache.put(key, {"label": label, "answer": answer, "settings": settings})
                    except (OSError, ValueError) as err:  # the cache only saves time: never lose a run to it
                        cache_ok = False
                        logger.warning(
                            "Cannot write the synonym cache in %s (%s); this run's answers are not cached.",
                            self.cache.folder,
                            err,
                        )
            bar.update(len(chunk))
        bar.close()

        result: dict[str, list[str]] = {}
        self.fallbacks = []
        self._descriptors = {label: clean_descriptors(_parse_both(answers.get(label))[1]) for label in labels}
        cleaned = clean_all(labels, parsed, self.max_synonyms)
        for label in labels:
            concepts = cleaned[label][0][1:]
            if not concepts:
                if label in answers:
                    reason = f"no usable synonym in its answer {answers[label][:80]!r}"
                else:
                    reason = failures.get(label, "the request failed")
                logger.warning("Label %r falls back to label-only: %s.", label, reason)
                self.fallbacks.append(label)
            result[label] = concepts
        return result

    def descriptors(self, labels: Sequence[str]) -> dict[str, list[str]]:
        """The visual descriptors of the answers to :meth:`synonyms` (asked for with ``descriptors=True``; answers
        that carry them anyway are kept too). Runs :meth:`synonyms` first (served from the cache) if needed."""
        if any(label not in self._descriptors for label in labels):
            self.synonyms(labels)
        return {label: list(self._descriptors.get(label, [])) for label in labels}


def _failure_reason(answer: object) -> str:
    if isinstance(answer, FailedRequest):
        return f"the request failed: {answer.reason}"
    if answer is None:
        return "the request failed"
    if isinstance(answer, str):
        return f"its answer could not be parsed {answer[:80]!r}"
    return f"the back end returned {type(answer).__name__} instead of text"


class TransformersChatSource(LLMSource):
    """Synonyms from a local or Hub ``transformers`` causal LM, with its chat template when it has one.

    Greedy decoding by default; labels are generated in batches of ``batch_size`` with left padding.
    """

    name = "transformers"

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        revision: str | None = None,
        device: str | None = None,
        dtype: Any = "auto",
        max_new_tokens: int = 256,
        batch_size: int = 8,
        do_sample: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_ref = model
        self.tokenizer = tokenizer
        self.revision = revision
        self.device = device
        self.dtype = dtype
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.do_sample = do_sample
        self._model: Any = None if isinstance(model, str) else model

    def settings(self) -> dict[str, Any]:
        name = self.model_ref if isinstance(self.model_ref, str) else getattr(self.model_ref, "name_or_path", "model")
        return {
            "model": str(name),
            "revision": self.revision,
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
        }

    def _load(self) -> None:
        from s3_hf.errors import ModelLoadError
        from s3_hf.models.loading import load_chat_model, resolve_device

        device = None if self.device is None else resolve_device(self.device)  # before minutes of loading
        if self._model is None or self.tokenizer is None:
            try:
                model, tokenizer = load_chat_model(self.model_ref, revision=self.revision, dtype=self.dtype)
            except ModelLoadError as err:
                raise SynonymSourceError(str(err)) from err
            self._model = self._model if self._model is not None else model
            self.tokenizer = self.tokenizer if self.tokenizer is not None else tokenizer
        if device is not None:
            self._model.to(device)
        self._model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def _prompt_text(self, messages: Messages) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages) + "\n\nAnswer:"

    def _generate(self, batch: list[Messages]) -> list[str | FailedRequest | None]:
        import torch

        if self._model is None or self.tokenizer is None:
            self._load()
        texts = [self._prompt_text(m) for m in batch]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self._model.device)
        with torch.inference_mode():
            out = self._model.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                do_sample=self.do_sample,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)


__all__ = [
    "MAX_CONTEXT_CLASSES",
    "PROMPT_VERSION",
    "SYSTEM_PROMPT",
    "FailedRequest",
    "LLMSource",
    "Messages",
    "TransformersChatSource",
    "build_messages",
]
