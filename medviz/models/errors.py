"""The registry's error type, in a module of its own so :mod:`medviz.models.registry` and
:mod:`medviz.models.specs` both raise it without importing each other in a cycle."""

from __future__ import annotations

from medviz.types import MedvizError


class RegistryError(MedvizError):
    """Unknown model, bad manifest, or a weights file that fails its checksum."""
