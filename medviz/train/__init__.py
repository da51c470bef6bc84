"""Training: one engine (:mod:`medviz.train.engine`) for every model family, task plugins in
:mod:`medviz.train.registry`, and the command line ``python -m medviz.train``."""
