"""JSON nesting measured from the bytes: brackets in strings do not count, the limit itself is allowed."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from hublink.domain.json_nesting import MAX_DEPTH, is_too_deep


def nested(depth: int) -> bytes:
    """Arrays and objects alternating, ``depth`` levels deep."""
    text = "1"
    for level in range(depth):
        text = f"[{text}]" if level % 2 else f'{{"k": {text}}}'
    return text.encode()


class TestIsTooDeep:
    """``is_too_deep`` against the nesting a parser would meet."""

    def test_the_limit_is_allowed_and_one_more_level_is_not(self) -> None:
        """MAX_DEPTH levels pass; MAX_DEPTH + 1 do not."""
        assert not is_too_deep(nested(MAX_DEPTH))
        assert is_too_deep(nested(MAX_DEPTH + 1))

    def test_brackets_inside_strings_do_not_count(self) -> None:
        """A string of 1,000 brackets (and escaped quotes) is one level, not a thousand."""
        assert not is_too_deep(json.dumps({"s": '\\"' + "[{" * 1000 + '"'}).encode())

    def test_many_siblings_are_not_depth(self) -> None:
        """10,000 arrays side by side are two levels deep."""
        assert not is_too_deep(b"[" + b",".join([b"[]"] * 10_000) + b"]")

    @given(st.recursive(st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)))
    def test_ordinary_documents_within_the_limit_pass(self, document: object) -> None:
        """Any document Hypothesis builds (far shallower than the limit) passes."""
        assert not is_too_deep(json.dumps(document).encode())
