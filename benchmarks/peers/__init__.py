"""Word count as a user of each peer would write it: ``python -m benchmarks.peers.NAME INPUT OUTPUT``.

Each writes ``word<TAB>count`` lines (any order), the word as its bytes.
"""
