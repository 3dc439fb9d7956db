"""Images in, and which model learns from which of them (METHOD.md section 2).

- :mod:`.load`: datasets by name (``digits``, ``cifar10``, ``imagefolder:PATH``...);
- :mod:`.dataset`: the :class:`~.dataset.ImageDataset` every loader returns, and its cache;
- :mod:`.digits`, :mod:`.cifar`, :mod:`.folders`: the loaders that decode into tensors;
  :mod:`.files`: images left on disk (``stream:``); :mod:`.images`: one image file, a tree;
- :mod:`.splits`: the settings' old/new training splits, the validation holdout and the
  query/gallery set of one experiment;
- :mod:`.augment`: seeded batch augmentation.
"""
