"""``BackfillIndex``: the merged search on faiss equals the evaluator's ranking, for exact,
IVF and HNSW parts; backfills are idempotent, saves atomic, bad files refused by name."""

import numpy as np
import pytest
import torch

from backfill_lib.core.merge import distance_rank_merge, rank_gallery, transformed_query_merge
from backfill_lib.serving.index import BackfillIndex
from tests.conftest import unit

N, D_OLD, D_NEW = 400, 8, 12


OLD, NEW, QUERIES = unit(N, D_OLD, 1), unit(N, D_NEW, 2), unit(25, D_NEW, 3)


MIX = torch.randn(D_NEW, D_OLD, generator=torch.Generator().manual_seed(4))


def psi(q: np.ndarray) -> np.ndarray:
    out = torch.as_tensor(q) @ MIX
    return torch.nn.functional.normalize(out, dim=1).numpy()


def make_index(**kw) -> BackfillIndex:
    return BackfillIndex(OLD.numpy(), D_NEW, to_old_space=psi, **kw)


@pytest.mark.parametrize("factory", ["Flat", "IVF1,Flat", "HNSW32"])
def test_search_equals_the_brute_force_merged_ranking(factory):
    """Exact factories (Flat; an IVF of one list, trained on each part) give the brute-force
    merged ranking; HNSW finds nearly all of it."""
    index = make_index(factory=factory)
    order = np.random.default_rng(0).permutation(N)
    parts = transformed_query_merge(torch.as_tensor(psi(QUERIES.numpy())), OLD, QUERIES, NEW)
    done = 0
    for fraction in (0.0, 0.25, 0.5, 0.9, 1.0):
        upto = int(fraction * N)
        index.backfill(order[done:upto], NEW.numpy()[order[done:upto]])
        done = upto
        assert index.fraction_backfilled == pytest.approx(upto / N)
        result = index.search(QUERIES.numpy(), k=10)
        ids, dist = rank_gallery(parts, index.backfilled, k=10)
        if factory != "HNSW32":
            np.testing.assert_array_equal(result.ids, ids.numpy())
        else:  # HNSW is approximate: nearly all of the exact top-10 is found
            overlap = np.mean(
                [len(set(a) & set(b)) for a, b in zip(result.ids, ids.numpy(), strict=True)]
            )
            assert overlap >= 9
        np.testing.assert_array_equal(result.from_new, index.backfilled[result.ids])
        if factory != "HNSW32":
            np.testing.assert_allclose(result.distances, dist.numpy(), atol=1e-5)


def test_a_factory_that_needs_training_trains_each_part_or_says_what_to_give():
    index = make_index(factory="IVF4,Flat")
    assert index.search(QUERIES.numpy(), k=3).from_new.sum() == 0  # untrained new part: empty
    with pytest.raises(ValueError, match=r"new part \(IVF4,Flat\) cannot be trained on 3 vectors"):
        index.backfill([0, 1, 2], NEW.numpy()[:3])
    assert index.fraction_backfilled == 0  # nothing moved
    with pytest.raises(ValueError, match=r"old part \(IVF4,Flat\) cannot be trained on 3"):
        BackfillIndex(OLD.numpy()[:3], D_NEW, factory="IVF4,Flat")
    trained = make_index(factory="IVF4,Flat", new_training=NEW.numpy())
    assert trained.backfill([0, 1, 2], NEW.numpy()[:3]) == 3
    result = trained.search(NEW.numpy()[:3], k=1)  # a vector lies in its own nearest list
    assert result.ids[:, 0].tolist() == [0, 1, 2] and result.from_new.all()


def test_drm_rule_uses_the_given_old_query():
    index = make_index()
    index.backfill(np.arange(0, N, 2), NEW.numpy()[::2])
    old_q = unit(25, D_OLD, 9)
    parts = distance_rank_merge(old_q, OLD, QUERIES, NEW)
    result = index.search(QUERIES.numpy(), 7, old_query=old_q.numpy())
    np.testing.assert_array_equal(result.ids, rank_gallery(parts, index.backfilled, 7)[0].numpy())


def test_backfill_is_idempotent():
    index = make_index()
    assert index.backfill([3, 4], NEW.numpy()[[3, 4]]) == 2
    before = index.search(QUERIES.numpy(), 20)
    assert index.backfill([4, 3], NEW.numpy()[[4, 3]]) == 0  # replaying a batch: no-op
    after = index.search(QUERIES.numpy(), 20)
    np.testing.assert_array_equal(before.ids, after.ids)
    assert index.fraction_backfilled == pytest.approx(2 / N)


def test_save_load_round_trip_and_interrupted_save(tmp_path, monkeypatch):
    index = make_index()
    index.backfill(np.arange(100), NEW.numpy()[:100])
    path = tmp_path / "gallery.npz"
    index.save(path)
    loaded = BackfillIndex.load(path, to_old_space=psi)
    np.testing.assert_array_equal(
        loaded.search(QUERIES.numpy(), 15).ids, index.search(QUERIES.numpy(), 15).ids
    )
    # a crash in the middle of the next save must leave the previous file intact
    index.backfill(np.arange(100, 300), NEW.numpy()[100:300])

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        index.save(path)
    survivor = BackfillIndex.load(path, to_old_space=psi)
    assert survivor.fraction_backfilled == pytest.approx(100 / N)
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_input_is_a_clear_error():
    index = make_index()
    with pytest.raises(KeyError, match="unknown gallery ids"):
        index.backfill([N + 5], NEW.numpy()[:1])
    with pytest.raises(ValueError, match=r"shape \(n, 12\)"):
        index.backfill([1], OLD.numpy()[:1])
    bad = NEW.numpy()[:1].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        index.backfill([1], bad)
    with pytest.raises(ValueError, match="twice"):
        index.backfill([1, 1], NEW.numpy()[:2])
    with pytest.raises(ValueError, match="k=401"):
        index.search(QUERIES.numpy(), N + 1)
    with pytest.raises(ValueError, match="old_query"):
        BackfillIndex(OLD.numpy(), D_NEW).search(QUERIES.numpy(), 3)
    with pytest.raises(ValueError, match="unit vectors"):
        index.backfill([1], 2 * NEW.numpy()[:1])
    with pytest.raises(ValueError, match="ids must be integers"):
        index.backfill([1.5], NEW.numpy()[:1])
    assert index.fraction_backfilled == 0.0
    for new_dim in (0, -3, 12.0):
        with pytest.raises(ValueError, match="new_dim must be a positive integer"):
            BackfillIndex(OLD.numpy(), new_dim)
    with pytest.raises(ValueError, match="ids must be integers, got dtype float64"):
        BackfillIndex(OLD.numpy(), D_NEW, ids=np.arange(N) + 0.5)
    with pytest.raises(ValueError, match="ids must be non-negative int64 .* -1"):
        BackfillIndex(OLD.numpy(), D_NEW, ids=np.arange(N) - 1)
    with pytest.raises(ValueError, match="ids must be non-negative"):
        index.backfill(np.array([-1]), NEW.numpy()[:1])
    with pytest.raises(ValueError, match="unit vectors"):
        BackfillIndex(3 * OLD.numpy(), D_NEW)


def _rewrite(path, tmp_path, change):
    """Save ``path``'s arrays again after ``change(meta, arrays)``: a crafted index file."""
    import json

    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    change(meta, arrays)
    out = tmp_path / "crafted.npz"
    np.savez(out, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return out


def test_an_old_new_corrupt_or_inconsistent_file_is_refused_by_name(tmp_path):
    from backfill_lib.serving.index import INDEX_FORMAT, _checksum

    index = make_index()
    index.backfill(np.arange(100), NEW.numpy()[:100])
    path = index.save(tmp_path / "gallery.npz")

    def drop_arrays(meta, arrays):
        arrays["ids"] = arrays["ids"][:-1]
        meta["sha256"] = _checksum(arrays)

    def duplicate_an_id(meta, arrays):
        arrays["ids"] = arrays["ids"].copy()
        arrays["ids"][1] = arrays["ids"][0]
        meta["sha256"] = _checksum(arrays)

    def forget_a_backfill(meta, arrays):
        arrays["backfilled"] = arrays["backfilled"].copy()
        arrays["backfilled"][0] = False
        meta["sha256"] = _checksum(arrays)

    def flip_a_byte(meta, arrays):
        arrays["new"] = arrays["new"].copy()
        arrays["new"][-1] ^= 1

    cases = [
        (lambda meta, arrays: meta.pop("format"), "an older backfill_lib"),
        (lambda meta, arrays: meta.update(format=INDEX_FORMAT + 1), "newer backfill_lib"),
        (flip_a_byte, "corrupt"),
        (drop_arrays, "mask has another length"),
        (duplicate_an_id, "ids are not unique"),
        (forget_a_backfill, "the old part holds 300, not 301; the new part holds 100, not 99"),
        (lambda meta, arrays: meta.update(format="1"), "its format field '1' is not an integer"),
        (lambda meta, arrays: meta.pop("old_dim"), "lacks or mistypes old_dim"),
        (lambda meta, arrays: meta.update(factory=3, old_removes="yes"), "factory, old_removes"),
    ]
    for change, message in cases:
        crafted = _rewrite(path, tmp_path, change)
        with pytest.raises(ValueError, match=rf"crafted.npz .*{message}"):
            BackfillIndex.load(crafted)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated.npz is not a readable BackfillIndex"):
        BackfillIndex.load(truncated)
    assert BackfillIndex.load(path).fraction_backfilled == 0.25


def test_ties_are_broken_by_id_like_the_evaluator():
    old, new = OLD.clone(), NEW.clone()
    old[[50, 10, 30]] = old[0].clone()  # exact ties in the old part...
    new[[40, 20]] = new[1].clone()  # ...and in the new part
    index = BackfillIndex(old.numpy(), D_NEW)
    backfilled = np.zeros(N, dtype=bool)
    backfilled[[1, 20, 40, 60]] = True
    index.backfill(np.flatnonzero(backfilled), new.numpy()[backfilled])
    # duplicates tie exactly within a part; queries off the gallery keep the two parts'
    # similarities apart (faiss and torch may round one shared value differently)
    old_queries = unit(len(QUERIES), D_OLD, 11)
    result = index.search(QUERIES.numpy(), N, old_query=old_queries.numpy())
    assert (np.diff(-result.distances, axis=1) == 0).any()  # the test does contain ties
    parts = distance_rank_merge(old_queries, old, QUERIES, new)
    np.testing.assert_array_equal(result.ids, rank_gallery(parts, backfilled, N)[0].numpy())


def test_search_parameters_reach_both_parts():
    # an IVF of 8 lists probed in all 8 is exact; an unknown parameter is named
    index = make_index(factory="IVF8,Flat", new_training=NEW.numpy())
    order = np.random.default_rng(1).permutation(N)[: N // 2]
    index.backfill(order, NEW.numpy()[order])
    parts = transformed_query_merge(torch.as_tensor(psi(QUERIES.numpy())), OLD, QUERIES, NEW)
    exact, _ = rank_gallery(parts, index.backfilled, k=10)
    index.set_search_parameters(nprobe=8)
    np.testing.assert_array_equal(index.search(QUERIES.numpy(), k=10).ids, exact.numpy())
    with pytest.raises(ValueError, match="no search parameter 'efSearch'"):
        index.set_search_parameters(efSearch=64)


def test_an_id_that_faiss_would_take_for_no_result_is_refused():
    """faiss pads missing results with id -1: a gallery item with id -1 would vanish from
    its own exact match. Negative ids are refused when the index is built."""
    with pytest.raises(ValueError, match="non-negative"):
        BackfillIndex(OLD.numpy()[:3], D_NEW, ids=np.array([-1, 0, 1]))
    index = BackfillIndex(OLD.numpy()[:3], D_NEW, ids=np.array([7, 0, 1]))
    result = index.search(NEW.numpy()[:1], 3, old_query=OLD.numpy()[:1])
    assert result.ids[0, 0] == 7  # the exact match, first
