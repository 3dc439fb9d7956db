"""backfill_lib: online backfilling for large-scale image retrieval.

Modules, in the order the data flows: ``data`` -> ``models`` / ``losses`` / ``training`` ->
``experiments`` -> ``backfill`` (merge rules) -> ``metrics`` -> ``report`` / ``plots`` /
``widgets``; ``index`` serves the merge on faiss; ``reproduce`` and ``cli`` run it all.
"""

__version__ = "0.1.0"
