"""The forward transformation (methods/fct.py): FCT's h recovers a map that exists, and its
parts put h(old) in the old part and the new embeddings in the new one, one space, one
backbone pass per query; with side-information h reads it after the old embedding."""

import torch
import torch.nn.functional as F

from backfill_lib.methods.registry import GalleryEmbeddings, get_method, side_information_name
from backfill_lib.training.transformation import fit_transformation
from tests.conftest import unit


def test_fct_s_h_recovers_a_rotation_of_the_old_space_on_held_out_items():
    old = unit(1200, 8, 11)
    rotation, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(3)))
    new = old @ rotation  # (N, 8): the new space is a rotation of the old one
    labels = torch.arange(1200) % 6
    h = fit_transformation(new[:1000], old[:1000], labels[:1000], get_method("fct").transformation)
    cosine = (h.transform(old[1000:]) * new[1000:]).sum(1)  # h maps old -> new
    assert cosine.mean() > 0.99


def test_fct_s_parts_are_one_space_with_h_of_the_old_embeddings_in_the_old_part():
    old, new = unit(50, 6, 1), unit(50, 10, 2)
    labels = torch.arange(50) % 5
    for name, side in (("fct", None), ("fct+side", torch.rand(50, 16))):
        config = get_method(name).transformation
        stored = old if side is None else torch.cat([old, side], dim=1)
        h = fit_transformation(new, stored, labels, config)
        models = {"old": old, "new": new}
        if side is not None:
            models[side_information_name(config.side_information)] = side
        parts = get_method(name).parts(GalleryEmbeddings(models, {name: h}))
        assert parts.forward_passes == 1 and parts.query_old is parts.query_new  # one query
        torch.testing.assert_close(parts.gallery_old, h.transform(stored))
        torch.testing.assert_close(parts.query_old, new)
        torch.testing.assert_close(parts.gallery_new, F.normalize(new, dim=1))
