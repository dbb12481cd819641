"""The Redis key map in keys.py's docstring is the truth: every key the code builds has a row, and back."""

from __future__ import annotations

import inspect
import re

from hublink.store import keys as keys_module
from hublink.store.keys import Keys


def documented_patterns() -> list[str]:
    """The key column of the docstring table, as regular expressions (``<x>`` matches one segment)."""
    rows = re.findall(r"^``([^`]+)``", keys_module.__doc__ or "", flags=re.M)
    return [re.escape(row) for row in rows]


def built_keys() -> dict[str, str]:
    """Every key or prefix the Keys class builds, with sample arguments, without the prefix."""
    k = Keys("hl:")
    built: dict[str, str] = {}
    for name, member in inspect.getmembers(Keys):
        if name.startswith("_") or name == "prefix":
            continue
        if isinstance(member, property):
            value = getattr(k, name)
        elif isinstance(inspect.getattr_static(Keys, name), staticmethod):
            continue  # RQ's own keys, named in the text below the table
        else:
            value = getattr(k, name)("x")
        built[name] = value.removeprefix("hl:")
    return built


def test_every_key_the_code_builds_has_a_row() -> None:
    """Each key builder's output (prefixes completed with a sample) matches exactly one documented row."""
    patterns = [re.sub(r"<[^>]+>", "[^:]+", p) for p in documented_patterns()]
    for name, key in built_keys().items():
        sample = key if not name.endswith("prefix") else key + "x"
        matching = [p for p in patterns if re.fullmatch(p, sample)]
        assert len(matching) == 1, f"{name} builds {key!r}: {len(matching)} rows match"


def test_every_row_is_built_by_the_code() -> None:
    """No documented key is left without a builder in Keys."""
    samples = [key if not name.endswith("prefix") else key + "x" for name, key in built_keys().items()]
    for pattern in documented_patterns():
        regex = re.sub(r"<[^>]+>", "[^:]+", pattern)
        assert any(re.fullmatch(regex, s) for s in samples), f"no Keys method builds {pattern!r}"


def test_scripts_get_their_shared_functions_pasted_in_once() -> None:
    """A script's ``-- include: lib_*`` line becomes the library's text: no include is left, no function twice."""
    from hublink.store.scripts import SCRIPT_NAMES, _source

    for name in SCRIPT_NAMES:
        text = _source(name)
        assert "-- include:" not in text, name
    for name in ("history_add", "history_erase"):
        assert _source(name).count("local function bucket(") == 1
