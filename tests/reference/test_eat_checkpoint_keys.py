"""The key names and shapes our EAT converter expects equal the released ones listed in EAT.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asdlab.encoders.checkpoints import fairseq_key_shapes, hf_key_shapes


def _expand(pattern: str) -> list[tuple[str, tuple[int, ...] | None]]:
    """Brace-expand one EAT.md line: `a.{0..2}.{weight [3,4], bias}` -> keys with optional shapes."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if match is None:
        key, _, shape = pattern.partition(" ")
        shape = shape.strip()
        return [(key, tuple(int(n) for n in shape.strip("[]").split(",")) if shape else None)]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    options = [o.strip() for o in match.group(1).split(",")]
    if len(options) == 1 and ".." in options[0]:
        start, stop = (int(n) for n in options[0].split(".."))
        options = [str(i) for i in range(start, stop + 1)]
    else:  # re-join shapes split at their commas: "weight [768", "1", "16", "16]" -> one option
        joined: list[str] = []
        for option in options:
            if joined and joined[-1].count("[") > joined[-1].count("]"):
                joined[-1] += "," + option
            else:
                joined.append(option)
        options = joined
    out = []
    for option in options:
        name, _, shape = option.partition(" ")
        out += _expand(head + name + tail + (" " + shape if shape else ""))
    return out


def _released_keys(eat_md: Path) -> dict[str, tuple[int, ...] | None]:
    text = eat_md.read_text()
    section = text[text.index("## Released checkpoints") :]
    block = section.split("```")[1]
    keys: dict[str, tuple[int, ...] | None] = {}
    for line in block.strip().splitlines():
        line = re.sub(r"\(older files:.*\)", "", line).strip()
        if not line or line.startswith("_ema"):
            continue
        line = re.sub(r"\s{2,}", " ", line)
        keys.update(_expand(line))
    return keys


@pytest.fixture(scope="module")
def released(shared_dir) -> dict[str, tuple[int, ...] | None]:
    path = shared_dir / "docs" / "EAT.md"
    if not path.is_file():
        pytest.skip(f"{path} is missing from ../shared")
    return _released_keys(path)


def test_parser_expands_braces_and_shapes():
    assert _expand("a.{0..1}.{weight [2,3], bias}") == [
        ("a.0.weight", (2, 3)), ("a.0.bias", None), ("a.1.weight", (2, 3)), ("a.1.bias", None)
    ]


def test_fairseq_student_keys_equal_eat_md(released):
    ours = fairseq_key_shapes("eat-base")
    assert len(released) == 164
    assert sorted(ours) == sorted(released)
    for key, shape in released.items():
        if shape is not None:
            assert ours[key] == shape, key


def test_teacher_keys_are_the_encoder_keys(released):
    teacher = fairseq_key_shapes("eat-base", which="teacher")
    assert sorted(teacher) == sorted(k for k in released if ".decoder." not in k)


def test_fine_tuned_and_hugging_face_prefixes_equal_eat_md(released):
    finetuned = fairseq_key_shapes("eat-base", finetuned=True)
    assert sorted(finetuned) == sorted("model." + k for k in released if ".decoder." not in k)
    hf_prefixes = {re.sub(r"\.(\d+)\..*|\.(weight|bias)$", "", k) for k in hf_key_shapes("eat-base")}
    # EAT.md: model.local_encoder.proj.*, model.extra_tokens, model.fixed_positional_encoder.positions,
    # model.pre_norm.*, model.blocks.{i}.*
    assert hf_prefixes == {
        "model.local_encoder.proj", "model.extra_tokens", "model.fixed_positional_encoder.positions",
        "model.pre_norm", "model.blocks",
    }
