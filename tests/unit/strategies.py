"""Hypothesis strategies shared by the unit tests."""

from __future__ import annotations

from hypothesis import strategies as st

#: Valid HubSpot record ids: 1 to 20 decimal digits, no leading zero.
object_ids = st.from_regex(r"\A[1-9][0-9]{0,19}\Z", fullmatch=True)

#: Strings that are not valid record ids.
not_object_ids = st.text(max_size=30).filter(
    lambda s: not (s.isascii() and s.isdigit() and 1 <= len(s) <= 20 and s[0] != "0")
)

#: Request bodies as raw bytes.
bodies = st.binary(max_size=2048)

#: Request URIs HubSpot could call, with some escapes in them.
uris = st.builds(
    lambda host, path, query: f"https://{host}.example.com/{path}" + (f"?{query}" if query else ""),
    st.from_regex(r"\A[a-z]{1,12}\Z", fullmatch=True),
    st.from_regex(r"\A[a-z0-9/%A-F]{0,30}\Z", fullmatch=True),
    st.from_regex(r"\A([a-z]{1,5}=[a-z0-9%]{0,8}&?){0,3}\Z", fullmatch=True),
)

#: Arbitrary JSON values (for "never raises" properties).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
