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

__all__ = ["docs_text", "generate_corpus", "generate_docs_corpus"]

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


DOCS_ROOT = Path("/usr/share/doc")


def _doc_texts(root: Path):
    """The text of every plain or gzipped file under ``root``, in path order; binaries skipped."""
    import gzip
    import zlib

    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        try:
            data = path.read_bytes()
            if path.suffix == ".gz":
                data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error, gzip.BadGzipFile):
            continue
        if data and b"\0" not in data[:8192]:
            yield data if data.endswith(b"\n") else data + b"\n"


def docs_text(limit: int, root: Path = DOCS_ROOT, long_line: int = 2048) -> bytes:
    """About ``limit`` bytes (whole lines) of real text: this machine's package documentation.

    Real text has what synthetic corpora lack: lines of many KB, words of several KB (URLs,
    base64, paths), bytes that are not UTF-8, CRLF line ends. The longest of those lie deep
    in the documentation, so every line of ``long_line`` bytes or more found anywhere is
    added (within a tenth of ``limit``) to the text read from the start. Deterministic for a machine."""
    head, size, longest, long_size = [], 0, [], 0
    for text in _doc_texts(root):
        if size < limit:
            piece = text[: limit - size]
            head.append(piece[: piece.rfind(b"\n") + 1])
            size += len(piece)
        for line in text.split(b"\n"):
            if len(line) >= long_line and long_size < limit // 10:
                longest.append(line + b"\n")
                long_size += len(line) + 1
    return b"".join(head + longest)


def generate_docs_corpus(path: str | Path, size: int, root: Path = DOCS_ROOT) -> Path:
    """Write about ``size`` bytes of the package documentation to ``path``, repeated as needed."""
    path = Path(path)
    written = 0
    with open(path, "wb") as f:
        while written < size:
            before = written
            for text in _doc_texts(root):
                f.write(text)
                written += len(text)
                if written >= size:
                    break
            if written == before:
                raise FileNotFoundError(f"no text files under {root}")
    return path
