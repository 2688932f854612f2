"""Turn an LLM's answer into concept lists: JSON first, then numbered/bulleted lists, then comma lists."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```[a-zA-Z]*\s*(.*?)```", re.S)
_ITEM = re.compile(r"^\s*(?:[-*•·]|\d{1,3}\s*[.):]|\(\d{1,3}\)|[a-z][.)])\s+(.+?)\s*$")
_HEADER = re.compile(
    r"^\s*(?:#+\s*)?\**\s*(synonyms?|names?|concepts?|descriptors?|visual descriptors?)\s*\**\s*:?\s*\**\s*(.*)$", re.I
)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'')
_PROSE = re.compile(r"\b(is|are|was|were|also|called|known|refers?|means?|sorry|cannot|can't|here|sure)\b", re.I)
_ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.I)
_KEYS_SYN = ("synonyms", "synonym", "names", "concepts")
_KEYS_DESC = ("descriptors", "descriptor", "visual_descriptors", "attributes")


def clean_item(text: Any) -> str:
    """Strip quotes, markdown, numbering, parenthetical remarks, trailing punctuation and a leading article."""
    s = str(text).strip()
    s = re.sub(r"^\s*(?:\d{1,3}\s*[.):]|[-*•·])\s+", "", s)
    s = s.replace("**", "").replace("__", "").strip("`'\"“”‘’ ")
    s = re.sub(r"\s*[\(\[].*?[\)\]]", "", s)  # "aeroplane (British)" -> "aeroplane"
    s = re.sub(r"\s+[-–—:]\s+.*$", "", s)  # "plane - short for airplane" -> "plane"
    s = s.strip(" .,;:!?`'\"“”‘’")
    s = _ARTICLE.sub("", s)
    return re.sub(r"\s+", " ", s).strip()


def _from_json(data: Any) -> tuple[list[str], list[str]] | None:
    if isinstance(data, list):
        return [clean_item(x) for x in data if isinstance(x, str | int | float)], []
    if isinstance(data, dict):
        lowered = {str(k).lower(): v for k, v in data.items()}
        syn = next((lowered[k] for k in _KEYS_SYN if k in lowered), None)
        desc = next((lowered[k] for k in _KEYS_DESC if k in lowered), [])
        if syn is None and len(data) == 1:  # {"airplane": [...]}
            syn = next(iter(data.values()))
        if isinstance(syn, str):
            syn = [syn]
        if isinstance(desc, str):
            desc = [desc]
        if isinstance(syn, list):
            return (
                [clean_item(x) for x in syn if isinstance(x, str)],
                [clean_item(x) for x in desc if isinstance(x, str)] if isinstance(desc, list) else [],
            )
    return None


def _json_candidates(text: str) -> list[str]:
    out = [text]
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = text.find(open_), text.rfind(close)
        if 0 <= start < end:
            out.append(text[start : end + 1])
    return out


def _salvage_quoted(text: str) -> tuple[list[str], list[str]]:
    """Quoted strings from broken JSON, split at a descriptors key if there is one."""
    lower = text.lower()
    cut = min((lower.find(f'"{k}"') for k in _KEYS_DESC if f'"{k}"' in lower), default=len(text))
    keys = set(_KEYS_SYN + _KEYS_DESC)

    def strings(part: str) -> list[str]:
        return [clean_item(a or b) for a, b in _QUOTED.findall(part) if (a or b).lower() not in keys]

    return strings(text[:cut]), strings(text[cut:])


def parse_answer(text: str | None) -> tuple[list[str], list[str]]:
    """``(synonyms, descriptors)`` parsed from a model's answer; empty lists when nothing usable is found.

    Tried in order: JSON (an object with ``synonyms``/``descriptors``, or a list; also inside code fences or
    surrounding prose), quoted strings from JSON that does not parse, numbered or bulleted lines (a
    ``Descriptors:`` header switches lists), and finally comma- or semicolon-separated items, unless the
    line reads as a sentence.
    """
    if not text or not text.strip():
        return [], []
    fenced = _FENCE.findall(text)
    body = fenced[0].strip() if fenced else text.strip()
    for candidate in _json_candidates(body):
        try:
            parsed = _from_json(json.loads(candidate))
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            continue
        if parsed is not None:
            return _nonempty(parsed)
    if body.lstrip().startswith(("{", "[")):
        return _nonempty(_salvage_quoted(body))

    syn: list[str] = []
    desc: list[str] = []
    target = syn
    found_items = False
    for line in body.splitlines():
        header = _HEADER.match(line)
        if header:
            target = desc if header.group(1).lower().startswith(("desc", "visual")) else syn
            rest = header.group(2).strip()
            if rest:
                target.extend(clean_item(x) for x in re.split(r"[,;]", rest))
                found_items = True
            continue
        item = _ITEM.match(line)
        if item:
            target.append(clean_item(item.group(1)))
            found_items = True
    if found_items:
        return _nonempty((syn, desc))

    line = next((ln for ln in body.splitlines() if ln.strip()), "")
    if ":" in line:
        line = line.split(":", 1)[1]
    if _PROSE.search(line):  # a sentence, not a list: nothing usable
        return [], []
    return _nonempty(([clean_item(x) for x in re.split(r"[,;]", line)], []))


def _nonempty(pair: tuple[list[str], list[str]]) -> tuple[list[str], list[str]]:
    return [x for x in pair[0] if x], [x for x in pair[1] if x]


__all__ = [
    "clean_item",
    "parse_answer",
]
