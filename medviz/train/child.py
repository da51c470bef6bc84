"""``python -m medviz.train.child``: the entry of a training child process (see :mod:`medviz.train.worker`).

A module of its own so that the request classes the child unpickles are those of
:mod:`medviz.train.worker`, not copies in ``__main__``.
"""

from medviz.train.worker import main

raise SystemExit(main())
