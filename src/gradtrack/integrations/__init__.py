"""Run gradtrack trackers under outside toolkits.

* :mod:`gradtrack.integrations.trax_client`: a TraX server loop (the protocol of the VOT toolkit,
  ``vot-toolkit`` 0.9 with ``vot-trax``) for every registered tracker: ``gradtrack vot-client --tracker NAME``.
* :mod:`gradtrack.integrations.workspace`: ``gradtrack vot-workspace DIR --tracker NAME --sequences SRC``
  writes a VOT toolkit workspace (sequences, a local stack, ``trackers.ini``) over local sequences.
* :mod:`gradtrack.integrations.cli`: registers both subcommands.

The got10k toolkit adapter lives in :mod:`gradtrack.evaluation.adapters`.  Nothing here imports torch or
trax at import time.
"""
