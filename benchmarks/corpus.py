"""A deterministic word-count corpus: Zipf-distributed words over a large vocabulary.

Word ranks follow Zipf's law (exponent 1.07, close to English text) over a vocabulary of
about a million synthetic words, so the number of distinct words keeps growing with the
corpus as it does in real text (Heaps' law). One word in a thousand of the vocabulary
carries a Latin-1 byte, which is not UTF-8, as text scraped from the web does. Lines hold
1 to 19 words. The same seed and size always give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["generate_corpus"]

VOCABULARY = 1_000_000
ZIPF_EXPONENT = 1.07
_WORDS_PER_CHUNK = 1_000_000


def _vocabulary(rng: np.random.Generator) -> pa.Array:
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    lengths = np.clip(rng.poisson(6, VOCABULARY), 1, 20)
    chars = letters[rng.integers(0, 26, int(lengths.sum()))]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    # Every thousandth word gets an 0xE9 (Latin-1 e-acute) as its first byte.
    chars[offsets[:-1][::1000]] = 0xE9
    return pa.Array.from_buffers(pa.binary(), VOCABULARY, [None, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes())])


def generate_corpus(path: str | Path, size: int, seed: int = 42) -> Path:
    """Write about ``size`` bytes (whole lines, at least ``size``) of corpus to ``path``."""
    rng = np.random.default_rng(seed)
    vocabulary = _vocabulary(rng)
    # Ranks are shuffled over the vocabulary so that frequent words have all lengths.
    rank_to_word = rng.permutation(VOCABULARY)
    weights = 1.0 / np.arange(1, VOCABULARY + 1) ** ZIPF_EXPONENT
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    path = Path(path)
    written = 0
    with open(path, "wb") as f:
        while written < size:
            ranks = np.minimum(np.searchsorted(cdf, rng.random(_WORDS_PER_CHUNK)), VOCABULARY - 1)
            words = vocabulary.take(pa.array(rank_to_word[ranks]))
            line_lengths = rng.integers(1, 20, _WORDS_PER_CHUNK // 8)
            offsets = np.concatenate([[0], np.cumsum(line_lengths)])
            offsets = offsets[offsets <= _WORDS_PER_CHUNK].astype(np.int32)
            lines = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), words), b" ")
            text = pc.binary_join(pa.array([lines], pa.list_(pa.binary())), b"\n")[0].as_buffer()
            f.write(text)
            f.write(b"\n")
            written += text.size + 1
    return path
