"""The store: the checkpoint format (:mod:`dcu.store.checkpoint`) and the ``dcu checkpoint``
command (:mod:`dcu.store.command`)."""
