"""Serving a backfill, and measuring one, at scale (docs/scale.md).

- :mod:`.index`: :class:`~.index.BackfillIndex`, the merge served on two faiss parts;
- :mod:`.job`: the crash-safe, resumable backfill job that fills one;
- :mod:`.topk`: mAP@k / recall@k curves from one search per part, exact;
- :mod:`.simulate`: old/new embedding pairs of any size, fitted to real models.
"""
