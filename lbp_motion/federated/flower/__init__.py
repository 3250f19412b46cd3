"""Real multi-site federation on Flower (1.41, Message API).

The same config, partition semantics and aggregation as the in-process simulation
(:class:`~lbp_motion.federated.FedAvgStrategy`), across separate processes and machines:

* :mod:`.apps`: the ServerApp and the ClientApp (the server loop, checkpoints);
* :mod:`.records`: what a server run records (``rounds.csv``, ``metrics.json``, replies);
* :mod:`.strategy`: the server strategy, Flower's FedAvg with lbp's ``fedavg()``;
* :mod:`.local`: a site's local training, the project's normal Lightning training;
* :mod:`.messages`: what crosses the wire, and the check that nothing else does;
* :mod:`.experiment`: an ``lbp`` config -> task, DataModule, federation settings;
* :mod:`.deploy`: ``lbp federate server|client|app`` over Flower's SuperLink/SuperNode,
  with :mod:`.processes` (the child processes), :mod:`.control` (the SuperLink's
  Control API: the run watcher) and :mod:`.connectivity` (a site's checks of its
  server); :mod:`.gateway` (the public port) and :mod:`.guard` (a clinic's allow-list
  of app hashes) run as processes of their own.

Importing this package imports nothing from Flower; its modules need the ``fl`` extra.
"""
