"""Small LGG-layout folders made from whole patients of the shared LGG set (files linked, never copied)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path


def lgg_folder(data_dir: Path, out: Path, keep: dict[str, list[str]], with_splits: bool = True) -> Path:
    """A folder at ``out`` holding the cases listed in ``keep`` (split -> case ids); ``with_splits`` writes
    ``keep`` as its ``splits.json`` (without it, every case belongs to every split)."""
    src = data_dir / "lgg_flair_mri_seg"
    out.mkdir()
    for sub in ("images", "masks"):
        os.symlink(src / sub, out / sub)
    cases = {c for v in keep.values() for c in v}
    with open(src / "pairs.csv") as f, open(out / "pairs.csv", "w", newline="") as g:
        reader = csv.DictReader(f)
        writer = csv.DictWriter(g, fieldnames=reader.fieldnames)
        writer.writeheader()
        writer.writerows(r for r in reader if r["case_id"] in cases)
    if with_splits:
        (out / "splits.json").write_text(json.dumps(keep))
    return out


def shipped_splits(data_dir: Path) -> dict[str, list[str]]:
    """The shared LGG set's patient-level splits."""
    return json.loads((data_dir / "lgg_flair_mri_seg" / "splits.json").read_text())
