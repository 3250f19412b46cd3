"""Runs of runs, through :mod:`lbp_motion.runs`: cross-validation by subject
(:mod:`.cv`), local W&B sweeps (:mod:`.sweep`) and reports of run directories
(:mod:`.report`)."""
