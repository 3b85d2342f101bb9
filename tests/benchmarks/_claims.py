"""Numbers quoted in a document's prose, checked against what the committed rows give.

A claim is a phrase of the document with ``{}`` where each number stands, and a function computing
those numbers (as text) from the rows; the phrase, filled, must occur in the document, whitespace and
line breaks aside. A phrase whose numbers are fixed text has a function that asserts them and returns
nothing to fill.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
Claim = tuple[str, Callable[[], Sequence[str]]]


def claim_ids(claims: Sequence[Claim]) -> list[str]:
    """Test ids: the first 40 characters of each phrase."""
    return [phrase[:40] for phrase, _ in claims]


def _normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def assert_quoted(doc: Path, phrase: str, numbers: Callable[[], Sequence[str]]) -> None:
    """Fail unless ``doc`` says ``phrase`` filled with ``numbers()``."""
    expected = _normalized(phrase.format(*numbers()))
    assert expected in _normalized(doc.read_text()), f"{doc.relative_to(REPO)} should say: {expected!r}"
