"""The answer parser on a corpus of realistic LLM answers."""

from __future__ import annotations

import pytest

from s3_hf.synonyms import build_messages, clean_concepts, parse_answer

CORPUS = [
    # (answer, expected synonyms after cleaning for label "airplane")
    ('{"synonyms": ["aeroplane", "plane", "airliner"]}', ["aeroplane", "plane", "airliner"]),
    ('```json\n{\n  "synonyms": ["aeroplane", "plane"]\n}\n```', ["aeroplane", "plane"]),
    (
        'Sure! Here are synonyms:\n{"synonyms": ["aeroplane", "plane"]}\nLet me know if you need more.',
        ["aeroplane", "plane"],
    ),
    ('["aeroplane", "plane", "jetliner"]', ["aeroplane", "plane", "jetliner"]),
    ('{"airplane": ["aeroplane", "plane"]}', ["aeroplane", "plane"]),
    ('{"Synonyms": "aeroplane"}', ["aeroplane"]),
    ("1. Aeroplane\n2. Plane\n3. Airliner", ["Aeroplane", "Plane", "Airliner"]),
    ("1) aeroplane\n2) plane", ["aeroplane", "plane"]),
    (
        "Here are some synonyms for airplane:\n\n1. **Aeroplane** - British English\n2. **Plane**\n3. **Jet**",
        ["Aeroplane", "Plane", "Jet"],
    ),
    ("- aeroplane\n- plane\n- the airliner\n- an aircraft", ["aeroplane", "plane", "airliner", "aircraft"]),
    ("* aeroplane (British spelling)\n* plane", ["aeroplane", "plane"]),
    ("• aeroplane\n• plane", ["aeroplane", "plane"]),
    ("Synonyms: aeroplane, plane, airliner.", ["aeroplane", "plane", "airliner"]),
    ("aeroplane, plane, jetliner, airliner", ["aeroplane", "plane", "jetliner", "airliner"]),
    ("aeroplane; plane; jet", ["aeroplane", "plane", "jet"]),
    ('"aeroplane", "plane"', ["aeroplane", "plane"]),
    ('{"synonyms": ["aeroplane", "plane", "airliner"', ["aeroplane", "plane", "airliner"]),  # cut off
    ("{'synonyms': ['aeroplane', 'plane']}", ["aeroplane", "plane"]),  # Python repr, not JSON
    ("1. airplane\n2. aeroplane\n3. Airplane\n4. AEROPLANE", ["aeroplane"]),  # repeats and the label itself
    ("1. aeroplane\n2. a fixed-wing aircraft that is powered by jet engines", ["aeroplane"]),  # a description
    ("An airplane, also called an aeroplane, is a powered fixed-wing aircraft.", []),  # prose
    ("I'm sorry, I can't help with that.", []),
    ("", []),
    ("   \n  ", []),
    ("{}", []),
]


@pytest.mark.parametrize(("answer", "expected"), CORPUS)
def test_parse_corpus(answer, expected):
    syn, _ = parse_answer(answer)
    assert clean_concepts("airplane", syn)[1:] == expected


def test_descriptors_are_separated():
    syn, desc = parse_answer("Synonyms:\n1. aeroplane\n2. plane\n\nDescriptors:\n- long wings\n- tail fin")
    assert syn == ["aeroplane", "plane"] and desc == ["long wings", "tail fin"]
    syn, desc = parse_answer('{"synonyms": ["plane"], "descriptors": ["wings"]}')
    assert syn == ["plane"] and desc == ["wings"]


def test_prompt_has_the_rules_and_context():
    messages = build_messages("crane", 7, domain="birds", other_labels=["crane", "heron", "stork"])
    user = messages[-1]["content"]
    assert 'up to 7 synonymous names for the visual category "crane" in a dataset of birds' in user
    assert "at most five words" in user and "no broader categories" in user
    assert "heron; stork" in user and "JSON" in user
    many = build_messages("a", other_labels=[f"class {i}" for i in range(500)])
    assert "class 499" not in many[-1]["content"]
