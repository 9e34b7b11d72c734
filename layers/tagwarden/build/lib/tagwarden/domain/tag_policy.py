"""Which tags must never move (protected) and which are expected to move (mutable)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_PROTECTED_TAG_PATTERNS: tuple[str, ...] = ("v[0-9]*.[0-9]*", "[0-9]*.[0-9]*")
DEFAULT_MUTABLE_TAG_PATTERNS: tuple[str, ...] = ("latest",)


class TagClass(StrEnum):
    """How the tag policy classifies a tag."""

    PROTECTED = "protected"
    MUTABLE = "mutable"
    ORDINARY = "ordinary"


def split_patterns(value: str) -> tuple[str, ...]:
    """Split a comma-separated list of shell-style globs, dropping blanks."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class TagPolicy:
    """Shell-style glob patterns (case-sensitive, like tags) that classify tags.

    A tag matching both lists is protected: when in doubt, the louder alert is the safer one.
    """

    protected: tuple[str, ...] = DEFAULT_PROTECTED_TAG_PATTERNS
    mutable: tuple[str, ...] = DEFAULT_MUTABLE_TAG_PATTERNS

    def classify(self, tag: str) -> TagClass:
        """Classify one tag."""
        if any(fnmatch.fnmatchcase(tag, pattern) for pattern in self.protected):
            return TagClass.PROTECTED
        if any(fnmatch.fnmatchcase(tag, pattern) for pattern in self.mutable):
            return TagClass.MUTABLE
        return TagClass.ORDINARY
