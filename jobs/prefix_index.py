"""A prefix index for completion: every word -> each of its prefixes of two characters or
more ("Mukesh" -> Mu, Muk, Muke, Mukes, Mukesh) -> per prefix the 5 most frequent words
(ties by word). Look completions up with ``mrkafka lookup OUTPUT_DIR PREFIX [--fuzzy N]``.
"""

from __future__ import annotations

from mrkafka import Job

TOP = 5


class PrefixIndex(Job):
    name = "prefix_index"
    parameters = {"top": TOP}

    def map(self, offset, line):
        for word in line.split():
            for end in range(2, len(word) + 1):
                yield word[:end], {word: 1}

    def reduce(self, a, b):
        merged = dict(a)
        for word, count in b.items():
            merged[word] = merged.get(word, 0) + count
        return merged

    def finish(self, prefix, counts):
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return [[word, count] for word, count in ranked[: self.params["top"]]]
