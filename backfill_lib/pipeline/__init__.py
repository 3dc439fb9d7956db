"""The experiment pipeline: a configuration in, curves, tables and figures out.

- :mod:`.config`: :class:`~.config.ExperimentConfig` and the default tables per profile;
- :mod:`.experiment`: :class:`~.experiment.Experiment`, METHOD.md's protocol as stages
  (plan, train models, embed, fit transformations, evaluate curves, report);
- :mod:`.artefacts`: the keyed, resumable cache underneath every stage;
- :mod:`.reproduce`: every setting over seeds, and the claims;
- :mod:`.tune`: ``backfill tune``, every method's options chosen on the validation split,
  written to an options file (:mod:`.options`) that runs take with ``--options``;
- :mod:`.gallery_job`: the crash-safe backfill job on an experiment's gallery.
"""
