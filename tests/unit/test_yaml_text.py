"""The command's YAML writer: whatever it writes, a YAML reader reads back as the same objects."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from tagwarden.cli.yaml_text import dump_document, dump_documents

# Keys as Kubernetes objects have them, plus the words YAML 1.1 reads as booleans.
keys = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_./-]{0,20}", fullmatch=True), st.sampled_from(["on", "off", "Yes", "n", ""])
)
scalars = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["off", "on", "yes", "no", "null", "~", "0755", "1e3", "- x", "a: b", "#c", "'q'", '"', "\t", "é"]),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.booleans(),
    st.none(),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=25
)


@given(st.dictionaries(keys, values, max_size=6))
def test_any_document_reads_back_as_written(document: dict[str, Any]) -> None:
    assert yaml.safe_load(dump_document(document)) == document


def test_a_stream_reads_back_as_its_documents_in_order() -> None:
    documents: list[dict[str, Any]] = [
        {"kind": "Namespace", "metadata": {"labels": {"tagwarden.io/mode": "off"}}},
        {"kind": "List", "items": []},
    ]

    text = dump_documents(documents, ["header", ""])

    assert text.startswith("# header\n#\n---\n")
    assert list(yaml.safe_load_all(text)) == documents


def test_a_value_with_no_yaml_form_is_refused() -> None:
    with pytest.raises(TypeError, match="float"):
        dump_document({"ratio": 0.5})
