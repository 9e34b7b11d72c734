"""Property-based: any text either parses as an image reference that round-trips, or is rejected cleanly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tagwarden.domain.images import InvalidReferenceError, parse_reference

HOSTILE = st.sampled_from(["#", "|", "@", ":", "/", "\x00", "\n", "é", "🐳", "..", "--", "sha256:", " "])
REFERENCE_LIKE = st.lists(
    st.one_of(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), HOSTILE, st.sampled_from(["shop/api", "latest"])),
    max_size=12,
).map("".join)


@settings(max_examples=400)
@given(st.one_of(st.text(max_size=300), REFERENCE_LIKE, st.text(min_size=4000, max_size=5000)))
def test_any_text_parses_or_is_rejected_with_the_documented_error(text: str) -> None:
    try:
        reference = parse_reference(text)
    except InvalidReferenceError:
        return
    assert parse_reference(str(reference)) == reference
    for part in (reference.name.registry, reference.name.repository, reference.tag or "", reference.digest or ""):
        assert not set(part) & {"#", "|", "\x00", "\n", " "}
