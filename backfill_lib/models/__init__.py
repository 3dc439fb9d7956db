"""The networks every model is made of: :mod:`.backbones` by name, and :mod:`.embedding`'s
:class:`~.embedding.EmbeddingModel` (backbone -> embedding head -> unit vector, plus the
cosine classifier it trains with); :mod:`.flops` counts what one pass of a network costs."""
