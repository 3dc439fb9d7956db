"""``BackfillIndex``: the online-backfilling merge served on faiss.

Two faiss indexes, an old part holding ``phi_o`` embeddings of the items not yet
backfilled and a new part holding the re-extracted ones. ``backfill(ids, embeddings)``
moves items from the old part to the new. ``search`` queries both parts and merges their
results by the one distance ``d = 2 - 2<q, g>`` (unit vectors, inner-product indexes):

- transformed query (``rt``): ``search(q_new, k)`` scores the old part with
  ``to_old_space(q_new)`` (a fitted transformation's psi, given at construction) and the
  new part with ``q_new``: one backbone pass per query.
- ``drm`` rule: ``search(q_new, k, old_query=q_old)`` uses the caller's old-model query.

The parts are exact (``"Flat"``) by default; any faiss factory string works (``"IVF256,Flat"``,
``"HNSW32"``...). Indexes that cannot remove items (HNSW) keep backfilled items in the old
part and exclude them at search time with an ID selector. Factories that need training (IVF,
PQ) train the old part on the old embeddings, and the new part on ``new_training`` (a sample
of new-model embeddings) when given, else on the first backfilled batch.

Backfilling an id that is already in the new part is a no-op (so a resumed backfill job can
replay its last batch safely); :meth:`backfill` returns how many items actually moved.
``save``/``load`` write one ``.npz`` file atomically: a crash mid-save leaves the previous
file intact. The file records its format version (``INDEX_FORMAT``) and a SHA-256 of its
arrays; :meth:`load` refuses an older, newer, corrupt or inconsistent file with an error
naming it. ``to_old_space`` is code, not data: pass it again to :meth:`load`.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import faiss
import numpy as np

from ..storage import atomic_write

__all__ = [
    "INDEX_FORMAT",
    "UNIT_TOLERANCE",
    "BackfillIndex",
    "QueryMap",
    "SearchResult",
    "check_factory",
]

QueryMap = Callable[[np.ndarray], np.ndarray]  # new-model queries (Q, d_n) -> old space (Q, d_o)
INDEX_FORMAT = 1  # bumped whenever the saved file's layout changes
UNIT_TOLERANCE = 1e-3


class SearchResult(NamedTuple):
    """Merged top-k: ``distances (Q, k)`` ascending, ``ids (Q, k)``, ``from_new (Q, k)``."""

    distances: np.ndarray
    ids: np.ndarray
    from_new: np.ndarray


def _as_matrix(x: np.ndarray, dim: int, name: str) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    norms = np.linalg.norm(x, axis=1)
    if len(x) and np.abs(norms - 1).max() > UNIT_TOLERANCE:
        raise ValueError(
            f"{name} must be unit vectors (norms range {norms.min():.3g}..{norms.max():.3g}): "
            "the merge compares distances 2 - 2<q, g>; normalise with "
            "x / np.linalg.norm(x, axis=1, keepdims=True)"
        )
    return x


def _as_ids(ids: np.ndarray, name: str) -> np.ndarray:
    """``ids`` as int64, refusing float or other non-integer arrays (no silent truncation)."""
    ids = np.asarray(ids)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(np.int64).max):
        raise ValueError(
            f"{name} must be non-negative int64 (faiss marks a missing result with -1), got "
            f"{ids.min()}..{ids.max()}"
        )
    return ids.astype(np.int64).reshape(-1)


def check_factory(factory: str, dim: int) -> faiss.Index:
    """An empty inner-product index of the faiss ``factory`` string for ``dim``-dimensional
    vectors; a ValueError naming the factory when faiss cannot build it (an unknown string, or
    one that does not fit ``dim``, such as PQ with a number of sub-vectors not dividing it)."""
    try:
        return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        message = re.sub(r"^Error in .*? at \S+:\d+: ", "", " ".join(str(err).split()))
        raise ValueError(
            f"faiss cannot build a {factory!r} index for {dim}-d vectors ({message}); give a "
            "factory string such as Flat, IVF256,Flat or HNSW32"
        ) from err


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()


def _merge_order(sims: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Column order ``(Q, m)``: highest similarity first, ties by lowest id.

    Each part's results arrive sorted, so a stable sort merges two runs in linear time; the
    rare rows with exactly tied similarities are re-sorted by (similarity, id).
    """
    order = np.argsort(-sims, axis=1, kind="stable")
    ranked = np.take_along_axis(sims, order, 1)
    tied = np.flatnonzero((ranked[:, 1:] == ranked[:, :-1]).any(1))
    if len(tied):
        order[tied] = np.lexsort((ids[tied], -sims[tied]), axis=1)
    return order


class BackfillIndex:
    """An online-backfilling gallery: old part + new part, merged at search time.

    ``old_embeddings (N, d_o)`` unit vectors of the whole gallery; ``ids (N,)`` int64
    (default ``0..N-1``); ``new_dim`` the new model's dimension; ``to_old_space`` psi
    ``(Q, d_n) -> (Q, d_o)`` for the transformed-query rule (``rt``); ``new_training
    (M, d_n)`` trains the new part of a factory that needs training (IVF, PQ) before
    anything is backfilled.
    """

    def __init__(
        self,
        old_embeddings: np.ndarray,
        new_dim: int,
        ids: np.ndarray | None = None,
        to_old_space: QueryMap | None = None,
        factory: str = "Flat",
        new_training: np.ndarray | None = None,
    ) -> None:
        old = _as_matrix(old_embeddings, np.shape(old_embeddings)[-1], "old_embeddings")
        if not isinstance(new_dim, int | np.integer) or new_dim <= 0:
            raise ValueError(f"new_dim must be a positive integer, got {new_dim!r}")
        self.old_dim, self.new_dim, self.factory = old.shape[1], int(new_dim), factory
        self.ids = np.arange(len(old), dtype=np.int64) if ids is None else _as_ids(ids, "ids")
        if self.ids.shape != (len(old),) or len(np.unique(self.ids)) != len(old):
            raise ValueError("ids must be one unique int64 id per gallery item")
        self.to_old_space = to_old_space
        self._position = {int(i): p for p, i in enumerate(self.ids)}
        self.backfilled = np.zeros(len(old), dtype=bool)
        self._old = self._make_index(self.old_dim)
        self._train(self._old, old, "old part")
        self._old.add_with_ids(old, self.ids)
        self._new = self._make_index(self.new_dim)
        if new_training is not None:
            training = _as_matrix(new_training, self.new_dim, "new_training")
            self._train(self._new, training, "new part")
        self._old_removes = True

    def _make_index(self, dim: int) -> faiss.Index:
        """An index of ``self.factory`` that stores gallery ids: IVF indexes store them and
        remove by id themselves; others (Flat, HNSW) are wrapped in an id map. (faiss's id
        map assumes removal shifts the vectors after the removed ones, as Flat does; IVF
        moves its last vector into the gap, so a wrapped IVF would return wrong ids.)"""
        inner = check_factory(self.factory, dim)
        return inner if faiss.try_extract_index_ivf(inner) else faiss.IndexIDMap2(inner)

    def _train(self, index: faiss.Index, vectors: np.ndarray, part: str) -> None:
        """Train ``index`` on ``vectors`` if its factory needs it; too few is a clear error."""
        if index.is_trained:
            return
        try:
            index.train(vectors)
        except RuntimeError as err:
            raise ValueError(
                f"the {part} ({self.factory}) cannot be trained on {len(vectors)} vectors "
                f"({err}); the new part trains on new_training= given to BackfillIndex, or "
                "else on the first backfilled batch: give more vectors or a smaller factory"
            ) from err

    def set_search_parameters(self, **parameters: float) -> None:
        """Set faiss search parameters of both parts, e.g. ``nprobe=16`` (IVF) or
        ``efSearch=128`` (HNSW). They are settings of this process, not saved with the index:
        set them again after :meth:`load`."""
        space = faiss.ParameterSpace()
        for name, value in parameters.items():
            for part in (self._old, self._new):
                try:
                    space.set_index_parameter(part, name, value)
                except RuntimeError as err:
                    raise ValueError(
                        f"{self.factory} has no search parameter {name!r} ({err})"
                    ) from err

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def fraction_backfilled(self) -> float:
        """Share of the gallery already in the new part."""
        return float(self.backfilled.mean())

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        """Row of each gallery id ``(n,)``; unknown ids are a KeyError naming them."""
        unknown = [int(i) for i in ids if int(i) not in self._position]
        if unknown:
            raise KeyError(
                f"unknown gallery ids {unknown[:5]}: only ids given at construction exist"
            )
        return np.array([self._position[int(i)] for i in ids], dtype=np.int64)

    def is_backfilled(self, ids: np.ndarray) -> np.ndarray:
        """Boolean ``(n,)``: which of ``ids`` are already in the new part."""
        return self.backfilled[self._positions(_as_ids(ids, "ids"))]

    def backfill(self, ids: np.ndarray, new_embeddings: np.ndarray) -> int:
        """Move ``ids`` to the new part with ``new_embeddings (n, d_n)``; return how many moved.

        Ids already backfilled are skipped (no-op). Unknown ids, duplicates within the call,
        wrong dims or NaN are errors, and nothing is changed.
        """
        ids = _as_ids(ids, "ids")
        emb = _as_matrix(new_embeddings, self.new_dim, "new_embeddings")
        if len(emb) != len(ids):
            raise ValueError(f"{len(ids)} ids but {len(emb)} embeddings")
        positions = self._positions(ids)
        if len(np.unique(ids)) != len(ids):
            raise ValueError("the same id appears twice in one backfill call")
        fresh = ~self.backfilled[positions]
        ids, emb, positions = ids[fresh], emb[fresh], positions[fresh]
        if not len(ids):
            return 0
        self._train(self._new, emb, "new part")
        self._new.add_with_ids(emb, ids)
        if self._old_removes:
            try:
                self._old.remove_ids(faiss.IDSelectorBatch(ids))
            except RuntimeError:  # e.g. HNSW: fall back to excluding at search time
                self._old_removes = False
        self.backfilled[positions] = True
        return len(ids)

    def search(
        self, query: np.ndarray, k: int, old_query: np.ndarray | None = None
    ) -> SearchResult:
        """Merged top-``k`` for new-model queries ``(Q, d_n)``.

        The old part is searched with ``old_query (Q, d_o)`` if given (drm), else with
        ``to_old_space(query)`` (rt).
        """
        query = _as_matrix(query, self.new_dim, "query")
        if not 1 <= k <= len(self):
            raise ValueError(f"k={k} must be between 1 and the gallery size {len(self)}")
        if old_query is None:
            if self.to_old_space is None:
                raise ValueError(
                    "no old-space query: pass old_query (drm) or build the index "
                    "with to_old_space=psi (rt)"
                )
            old_query = self.to_old_space(query)
        old_query = _as_matrix(old_query, self.old_dim, "old_query")
        if len(old_query) != len(query):
            raise ValueError("query and old_query must hold the same number of rows")
        new_sims, new_ids = self._search_part(self._new, query, k, exclude=None)
        old_sims, old_ids = self._search_part(self._old, old_query, k, exclude=self._tombstones())
        sims, ids = np.hstack([new_sims, old_sims]), np.hstack([new_ids, old_ids])
        order = _merge_order(sims, ids)[:, :k]
        top = np.take_along_axis(sims, order, 1)
        return SearchResult(2.0 - 2.0 * top, np.take_along_axis(ids, order, 1), order < k)

    def _tombstones(self) -> faiss.SearchParameters | None:
        """Search parameters hiding backfilled items from an old part that cannot remove them."""
        if self._old_removes or not self.backfilled.any():
            return None
        selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(self.ids[self.backfilled]))
        return faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]  # faiss's stub

    @staticmethod
    def _search_part(
        index: faiss.Index, query: np.ndarray, k: int, exclude: faiss.SearchParameters | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(similarities, ids)`` of one part, padded with ``-inf`` / ``-1``."""
        if index.ntotal == 0:  # also an untrained part, which faiss refuses to search
            return np.full((len(query), k), -np.inf, np.float32), np.full((len(query), k), -1)
        sims, ids = index.search(query, k, params=exclude)
        if index.ntotal < k or exclude is not None:  # faiss pads missing results with id -1
            sims[ids < 0] = -np.inf
        return sims, ids

    def save(self, path: str | Path) -> Path:
        """Write the index to ``path`` (``.npz``) atomically, with its format and checksum."""
        arrays = {
            "ids": self.ids,
            "backfilled": self.backfilled,
            "old": faiss.serialize_index(self._old),
            "new": faiss.serialize_index(self._new),
        }
        meta = {
            "format": INDEX_FORMAT,
            "old_dim": self.old_dim,
            "new_dim": self.new_dim,
            "factory": self.factory,
            "old_removes": self._old_removes,
            "sha256": _checksum(arrays),
        }

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                meta_bytes = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
                np.savez(fh, meta=meta_bytes, **arrays)  # type: ignore[arg-type]  # numpy's stub

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path, to_old_space: QueryMap | None = None) -> BackfillIndex:
        """Read an index written by :meth:`save`; a clear ``ValueError`` names a file that is
        from another format version, corrupt, or inconsistent."""
        try:
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
                meta = json.loads(data["meta"].tobytes())
                arrays = {name: data[name] for name in ("ids", "backfilled", "old", "new")}
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise ValueError(f"{path} is not a readable BackfillIndex file ({err})") from err
        if not isinstance(meta, dict):
            raise ValueError(f"{path} is not a BackfillIndex file (its metadata is no object)")
        version = meta.get("format", 0)  # files from before the format field: version 0
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(
                f"{path} is not a BackfillIndex file (its format field {version!r} is not an "
                "integer); rebuild the index"
            )
        if version != INDEX_FORMAT:
            age = "a newer" if version > INDEX_FORMAT else "an older"
            raise ValueError(
                f"{path} was written by {age} backfill_lib (index format {version}, this one "
                f"reads {INDEX_FORMAT}); rebuild the index with this version, or use the "
                "version that wrote it"
            )
        fields = {
            "old_dim": int,
            "new_dim": int,
            "factory": str,
            "old_removes": bool,
            "sha256": str,
        }
        wrong = [k for k, kind in fields.items() if not isinstance(meta.get(k), kind)]
        if wrong:
            raise ValueError(
                f"{path} is inconsistent: its metadata lacks or mistypes {', '.join(wrong)}; "
                "rebuild the index"
            )
        if _checksum(arrays) != meta["sha256"]:
            raise ValueError(f"{path} is corrupt (its arrays do not match their checksum)")
        self = cls.__new__(cls)
        self.old_dim, self.new_dim = meta["old_dim"], meta["new_dim"]
        self.factory, self._old_removes = meta["factory"], meta["old_removes"]
        self.ids, self.backfilled = arrays["ids"], arrays["backfilled"].copy()
        self._old = faiss.deserialize_index(arrays["old"])
        self._new = faiss.deserialize_index(arrays["new"])
        self.to_old_space = to_old_space
        self._position = {int(i): p for p, i in enumerate(self.ids)}
        self._check_consistent(path)
        return self

    def _check_consistent(self, path: str | Path) -> None:
        """The loaded parts agree with the id list and the backfilled mask."""
        n, moved = len(self.ids), int(self.backfilled.sum())
        expected_old = n - moved if self._old_removes else n
        problems = [
            text
            for text, bad in (
                ("ids are not unique", len(self._position) != n),
                ("an id is negative", bool(n and self.ids.min() < 0)),
                ("the backfilled mask has another length", self.backfilled.shape != (n,)),
                (
                    f"the old part holds {self._old.ntotal}, not {expected_old}",
                    self._old.ntotal != expected_old,
                ),
                (f"the new part holds {self._new.ntotal}, not {moved}", self._new.ntotal != moved),
                (
                    "a part's dimension differs from the recorded one",
                    (self._old.d, self._new.d) != (self.old_dim, self.new_dim),
                ),
            )
            if bad
        ]
        if problems:
            raise ValueError(f"{path} is inconsistent: {'; '.join(problems)}; rebuild the index")
