"""Training, kept apart from the models and the methods it trains.

- :mod:`.trainer`: :class:`~.trainer.TrainConfig` and the loop (:func:`~.trainer.fit`,
  :class:`~.trainer.TrainingRun`): resumable per epoch, data-parallel under torchrun;
- :mod:`.objectives`: what the loop minimises (cross-entropy; plus a compatibility loss);
- :mod:`.checkpoints`: the cache of finished models (:func:`~.checkpoints.train_or_load`);
- :mod:`.embedding`: a trained model applied to images; :mod:`.files`: the same for images
  left on disk;
- :mod:`.transformation`: fitting psi (and rho) on embeddings;
- :mod:`.compute`, :mod:`.distributed`: the device, bf16, and the processes of a run.
"""
