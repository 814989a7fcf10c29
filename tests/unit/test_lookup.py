from __future__ import annotations

import pytest

from mrkafka.lookup import levenshtein


@pytest.mark.parametrize(
    "a,b,d",
    [("kitten", "sitting", 3), ("", "abc", 3), ("abc", "abc", 0), ("Mukesh", "Mukseh", 2), ("ab", "ba", 2),
     ("flaw", "lawn", 2), ("Mu", "Mukesh", 4)],
)  # fmt: skip
def test_levenshtein(a: str, b: str, d: int) -> None:
    assert levenshtein(a, b, 10) == d == levenshtein(b, a, 10)
    assert levenshtein(a, b, d - 1) == d if d else True  # a distance over the limit is limit + 1
