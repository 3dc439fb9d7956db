"""A backfill job that survives crashes: re-embed a gallery into a saved BackfillIndex.

The job walks the gallery in a fixed order, in batches: it embeds a batch with the new
model, moves it into the index (:meth:`BackfillIndex.backfill`), and saves the index
atomically every ``save_every`` batches and after the last one. The saved file *is* the
progress record: its backfilled mask says which items hold new embeddings, and the job
only ever backfills a prefix of its order, cut at batch boundaries. So:

- after ``kill -9`` at any point, the next run loads the last saved index and goes on from
  the first item of the order that is not backfilled. Work since the last save is redone;
  no item is lost, and none is written twice: the replayed batches rebuild the very index
  an uninterrupted run builds (``tests/test_job.py`` kills a job in a loop to check it);
- another process that loads the file while the job runs sees the state of one save,
  consistent (the file is replaced atomically and checked on load) and a prefix of the order.

The order and batch size are recorded beside the index (``<index>.job.json``) on the first
run; once the index is saved, a resume with another order or batch size is refused, since it
could not rebuild the same index (a first run that failed before saving binds nothing).
One job at a time holds ``<index>.lock``. Each save writes the whole index (about
``N (d_o + d_n) 4`` bytes for exact parts): at a million items, choose ``save_every`` so
that a save is rare next to the batches it protects.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..storage import atomic_write, exclusive, load_json
from .index import BackfillIndex

__all__ = ["JobReport", "job_record", "run_backfill_job"]


@dataclass(frozen=True)
class JobReport:
    """What a run of the job did: items backfilled before it started and by its end, of
    ``total``; batches embedded by this run and saves it wrote."""

    resumed_at: int
    done: int
    total: int
    batches: int
    saves: int


def _job_record(order: np.ndarray, batch_size: int) -> dict:
    digest = hashlib.sha256(np.ascontiguousarray(order, dtype=np.int64).tobytes()).hexdigest()
    return {"format": 1, "items": len(order), "order_sha256": digest, "batch_size": batch_size}


def job_record(index_path: str | Path) -> dict | None:
    """The record of the job at ``index_path`` (``<index>.job.json``), checked to be a JSON
    object, or ``None`` when there is none yet; a damaged record is named with the fix."""
    path = Path(index_path).with_name(Path(index_path).name + ".job.json")
    if not path.exists():
        return None
    fix = "delete it (the job rereads its progress from the index) or start at another path"
    return load_json(path, dict, fix)


def _check_record(index_path: Path, record: dict) -> None:
    """Write the job's record on its first run (a record without a saved index binds
    nothing: a first run that failed may be retried otherwise); refuse a resume that
    differs from it."""
    path = index_path.with_name(index_path.name + ".job.json")
    stored = job_record(index_path)
    if stored is None or not index_path.exists():
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record)))
        return
    if stored != record:
        changed = ", ".join(k for k in record if stored.get(k) != record[k])
        raise ValueError(
            f"{path} records a job with another {changed}: resume it with the same order and "
            "batch size, or start a new job at another index path"
        )


def run_backfill_job(
    index_path: str | Path,
    order: np.ndarray,
    embed: Callable[[np.ndarray], np.ndarray],
    initial: Callable[[], BackfillIndex],
    batch_size: int = 256,
    save_every: int = 1,
    max_batches: int | None = None,
) -> JobReport:
    """Backfill the index at ``index_path`` in ``order``, resuming from its last save.

    ``order (N,)``: every gallery id once. ``embed(ids (b,)) -> (b, d_n)`` unit new-model
    embeddings of those items. ``initial()`` builds the index (old part only) on the first
    run; later runs load the saved file. ``max_batches``: stop (after a save) once this run
    has embedded that many batches, e.g. to run the job in nightly slices; the next run goes
    on from there. Returns a :class:`JobReport`.
    """
    if batch_size < 1 or save_every < 1 or (max_batches is not None and max_batches < 1):
        raise ValueError(
            f"batch_size {batch_size}, save_every {save_every} and max_batches {max_batches} "
            "must be at least 1"
        )
    order = np.asarray(order, dtype=np.int64)
    path = Path(index_path)
    with exclusive(path):
        _check_record(path, _job_record(order, batch_size))
        if path.exists():
            index = BackfillIndex.load(path)
        else:
            index = initial()
            index.save(path)
        if not np.array_equal(np.sort(order), np.sort(index.ids)):
            raise ValueError(f"order must hold every id of {path}'s gallery once")
        done = int(index.backfilled.sum())
        if not index.is_backfilled(order[:done]).all():
            raise ValueError(
                f"{path}'s backfilled items are not the first {done} of this order: it was "
                "backfilled by something else; start a new job at another index path"
            )
        resumed_at, batches, saves = done, 0, 0
        starts = range(done, len(order), batch_size)[:max_batches]
        for start in tqdm(starts, desc="backfill job", unit="batch", disable=not len(starts)):
            ids = order[start : start + batch_size]
            index.backfill(ids, embed(ids))
            batches += 1
            if batches % save_every == 0 or batches == len(starts):
                index.save(path)
                saves += 1
        return JobReport(resumed_at, int(index.backfilled.sum()), len(order), batches, saves)
