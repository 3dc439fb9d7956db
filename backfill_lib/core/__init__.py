"""The method itself: what METHOD.md defines, on tensors, with nothing of the project around it.

- :mod:`.merge`: a backfill's two gallery parts (:class:`~.merge.TwoPartEmbeddings`) and the
  merge rules that score them (single space, distance rank merge, transformed query);
- :mod:`.orders`: backfill orders and which items are backfilled at each curve step;
- :mod:`.metrics`: the exact curve evaluator, AUC, relative gain, negative flips;
- :mod:`.transformation`: psi and rho, a fitted transformation, and its two losses;
- :mod:`.embeddings`: helpers shared by the losses (class means, dimension checks).

This layer imports only torch and numpy (docs/architecture.md).
"""
