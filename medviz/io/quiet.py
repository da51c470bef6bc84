"""Keep pydicom's own warnings out of logs and the console while reading untrusted files.

pydicom reports invalid values with ``warnings.warn`` and its ``"pydicom"`` logger, quoting the
value (a patient name or UID can end up in a log). Inside :func:`quiet_pydicom` warnings are
captured (the readers inspect some of them, e.g. end-of-file) and the logger drops records below
ERROR. Nothing is printed or logged by the loaders themselves.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextmanager
def quiet_pydicom() -> Iterator[list[warnings.WarningMessage]]:
    """Capture all warnings (yielded list) and silence the ``pydicom`` logger below ERROR."""
    logger = logging.getLogger("pydicom")
    flt = _BelowError()
    logger.addFilter(flt)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield caught
    finally:
        logger.removeFilter(flt)
