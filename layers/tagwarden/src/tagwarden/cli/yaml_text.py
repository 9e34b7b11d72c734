"""Block-style YAML for the Kubernetes objects the command prints, without a YAML library.

PyYAML is a development dependency only (the package installs into the webhook's image and the CLI without
it), and the objects are plain maps, lists, strings, integers and booleans. Every string is written
double-quoted with JSON's escapes, which YAML reads as the same string: no value can turn into a boolean
(`off`, `yes`), a number (`0755`) or a null the way a plain scalar would in YAML 1.1 parsers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
# Words a YAML 1.1 parser reads as booleans or null when unquoted (kubectl's parser among them).
_RESERVED = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
# Characters outside YAML's printable set that JSON leaves as they are (it escapes only those below 0x20).
_NOT_PRINTABLE = re.compile("[\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _quoted(text: str) -> str:
    """`text` double-quoted: JSON's escapes, plus YAML's for what YAML may not hold unescaped."""
    return _NOT_PRINTABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", json.dumps(text, ensure_ascii=False))


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _quoted(value)
    raise TypeError(f"no YAML form for {type(value).__name__}: {value!r}")


def _key(key: str) -> str:
    if _PLAIN_KEY.fullmatch(key) and key.lower() not in _RESERVED:
        return key
    return _quoted(key)


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        lines: list[str] = []
        for key, item in value.items():
            if isinstance(item, Mapping | list | tuple) and item:
                # A list under a key sits at the key's own indentation (the usual Kubernetes style).
                lines.append(f"{pad}{_key(key)}:")
                lines.extend(_lines(item, indent if isinstance(item, list | tuple) else indent + 2))
            else:
                lines.append(f"{pad}{_key(key)}: {_empty_or_scalar(item)}")
        return lines
    if isinstance(value, list | tuple):
        lines = []
        for item in value:
            if isinstance(item, Mapping | list | tuple) and item:
                nested = _lines(item, indent + 2)
                nested[0] = f"{pad}- {nested[0][indent + 2 :]}"
                lines.extend(nested)
            else:
                lines.append(f"{pad}- {_empty_or_scalar(item)}")
        return lines
    return [f"{pad}{_scalar(value)}"]


def _empty_or_scalar(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list | tuple):
        return "[]"
    return _scalar(value)


def dump_document(document: Mapping[str, Any]) -> str:
    """One YAML document (no `---`), ending with a newline."""
    if not document:
        return "{}\n"
    return "\n".join(_lines(document, 0)) + "\n"


def dump_documents(documents: Iterable[Mapping[str, Any]], header: Sequence[str] = ()) -> str:
    """A multi-document YAML stream: each document after `---`, `header` lines first as `#` comments."""
    comments = "".join(f"# {line}\n" if line else "#\n" for line in header)
    return comments + "".join(f"---\n{dump_document(document)}" for document in documents)
