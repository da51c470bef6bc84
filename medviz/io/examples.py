"""Bundled examples: real images shipped inside installed packages, so no download is needed.

Files inside the pydicom, nibabel and scikit-image distributions, and two chest X-rays in the project's
``examples/`` folder (a fresh clone has no ``../shared/data``). Each :class:`Example` names where the file comes from and its licence.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from medviz.config import PROJECT_ROOT
from medviz.io.loader import load_path
from medviz.io.nifti import read_nifti
from medviz.io.raster import planar_volume
from medviz.types import LoadError, Volume

_KERMANY = ("Kermany et al., Mendeley Data v2, doi:10.17632/rscbjbr9sj.2, CC BY 4.0 (grey, 256 px short side, "
            "JPEG q92; see examples/SOURCE.md)")
_PYDICOM = "pydicom test data (pydicom/data/test_files, MIT licence of pydicom; see its README.txt)"


@dataclass(frozen=True)
class Example:
    """A bundled example.

    Attributes:
        key: identifier for :func:`load_example`.
        title: short title for a picker.
        description: one or two sentences: what it is, size, why it is useful.
        source: where it comes from and its licence.
    """

    key: str
    title: str
    description: str
    source: str


EXAMPLES: tuple[Example, ...] = (
    Example(
        "ct_small",
        "CT slice (spine, HU)",
        "A real axial CT slice through the upper spine, 128×128, 0.66 mm pixels, in Hounsfield units: try the CT "
        "window presets.",
        "pydicom `CT_small.dcm` (pydicom.examples.ct), downsized from NEMA WG04 'CT1_UNC'. " + _PYDICOM,
    ),
    Example(
        "mr_brain_3d",
        "MR brain volume (3D, NIfTI)",
        "A real T1-weighted head MR volume, 33×41×25 voxels of 2 mm, for 3D/MPR viewing.",
        "nibabel `tests/data/anatomical.nii` (nibabel test data, MIT licence of nibabel; see its COPYING).",
    ),
    Example(
        "ct_series_with_gap",
        "CT series, 3 slices (tiny)",
        "Sample slices (16×16 pixels) of an axial CT series read as a series: three contiguous 1.25 mm slices are "
        "shown; the folder's fourth slice lies 200 mm away, so it is a separate stack and the gap note shows.",
        "pydicom `dicomdirtests/77654033/CT2/` (downsized from pcir.org freely available image sets). " + _PYDICOM,
    ),
    Example(
        "mr_small",
        "MR slice",
        "A real axial MR slice, 64×64, 0.31 mm pixels (arbitrary units).",
        "pydicom `MR_small.dcm` (pydicom.examples.mr), downsized from NEMA WG04 'MR1_UNC'. " + _PYDICOM,
    ),
    Example(
        "us_multiframe",
        "Ultrasound cine, 30 frames (colour)",
        "A multi-frame colour echocardiography clip, 30 frames of 240×320, JPEG baseline YBR: shown as RGB frames.",
        "pydicom `examples_ybr_color.dcm` (pydicom.examples.ybr_color). " + _PYDICOM,
    ),
    Example(
        "retina_photo",
        "Fundus photograph (RGB)",
        "A colour photograph of a normal left retina, 1411×1411 RGB; no pixel spacing.",
        "scikit-image `skimage.data.retina()` (M. Häggström, Wikimedia Commons, CC0 1.0 public domain).",
    ),
    Example(
        "cxr_normal",
        "Paediatric chest X-ray, normal (test split)",
        "A real frontal chest radiograph of a child, 361×256, labelled NORMAL: an image of the official test split of "
        "Kermany et al. 2018, so the shipped 224-px pneumonia model has not trained on it.",
        "`examples/cxr_normal_IM-0001-0001.jpg`: " + _KERMANY,
    ),
    Example(
        "cxr_pneumonia",
        "Paediatric chest X-ray, pneumonia (test split)",
        "A real frontal chest radiograph of a child, 434×256, labelled PNEUMONIA (bacterial): an image of the official "
        "test split of Kermany et al. 2018, so the shipped 224-px pneumonia model has not trained on it.",
        "`examples/cxr_pneumonia_person121_bacteria_575.jpg`: " + _KERMANY,
    ),
    Example(
        "shepp_logan",
        "Shepp–Logan phantom",
        "The synthetic Shepp–Logan head phantom, 400×400, values 0–1; no pixel spacing.",
        "scikit-image `skimage.data.shepp_logan_phantom()` (BSD-3-Clause); Shepp & Logan, IEEE TNS 1974.",
    ),
)


#: The example a new session opens on (the first screen of a demo): a real 3D study that can be browsed in three planes.
DEFAULT_EXAMPLE = "mr_brain_3d"

#: The "start here" line shown with :data:`DEFAULT_EXAMPLE` on the first screen.
START_HERE = ("Start here: a real 3D head MR is open, in axial, coronal and sagittal planes. Step through the slices, "
              "change the window and measure; pick another example or upload your own study in the sidebar.")


def list_examples() -> list[Example]:
    """The bundled examples, the most useful real scan first."""
    return list(EXAMPLES)


def load_example(key: str) -> Volume:
    """Load a bundled example by key (no download).

    Raises:
        KeyError: unknown key (the message suggests the closest key).
        LoadError: the bundled file is missing from the installed package.
    """
    loaders = {
        "ct_small": lambda: _dicom_file("CT_small.dcm"),
        "mr_small": lambda: _dicom_file("MR_small.dcm"),
        "us_multiframe": lambda: _dicom_file("examples_ybr_color.dcm"),
        "ct_series_with_gap": _ct_series,
        "mr_brain_3d": _anatomical,
        "retina_photo": _retina,
        "shepp_logan": _phantom,
        "cxr_normal": lambda: _cxr("cxr_normal_IM-0001-0001.jpg"),
        "cxr_pneumonia": lambda: _cxr("cxr_pneumonia_person121_bacteria_575.jpg"),
    }
    if key not in loaders:
        close = difflib.get_close_matches(key, loaders, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown example {key!r}; valid keys: {sorted(loaders)}.{hint}")
    return loaders[key]()


def _pydicom_file(*parts: str) -> Path:
    path = Path(str(resources.files("pydicom.data").joinpath("test_files", *parts)))
    if not path.exists():
        raise LoadError("/".join(parts), "this bundled example is missing from the installed pydicom package")
    return path


def _dicom_file(name: str) -> Volume:
    return load_path(_pydicom_file(name)).series[0].volume


def _ct_series() -> Volume:
    """The three contiguous slices of the folder (its fourth slice lies 200 mm away, across a gap, and loads as a
    stack of its own); the loader's note on the gap is kept in the Volume's warnings."""
    result = load_path(_pydicom_file("dicomdirtests", "77654033", "CT2"))
    volume = max((s.volume for s in result.series), key=lambda v: v.shape[0])
    return dataclasses.replace(volume, warnings=volume.warnings + tuple(n for n in result.notes if "gap" in n))


def _cxr(name: str) -> Volume:
    """A bundled chest X-ray of ``examples/`` (known to be a radiograph: modality DX)."""
    path = PROJECT_ROOT / "examples" / name
    if not path.exists():
        raise LoadError(name, "this bundled example is missing from the project's examples/ folder")
    return dataclasses.replace(load_path(path).series[0].volume, modality="DX")


def _anatomical() -> Volume:
    path = Path(str(resources.files("nibabel").joinpath("tests", "data", "anatomical.nii")))
    if not path.exists():
        raise LoadError("anatomical.nii", "this bundled example is missing from the installed nibabel package")
    return read_nifti(path.read_bytes(), "anatomical.nii", modality="MR", units="a.u.")


def _retina() -> Volume:
    import numpy as np
    from skimage import data

    rgb = np.ascontiguousarray(data.retina(), dtype=np.uint8)[np.newaxis]
    return _plain_image(rgb, "retina", "RGB")


def _phantom() -> Volume:
    import numpy as np
    from skimage import data

    img = np.asarray(data.shepp_logan_phantom(), dtype=np.float32)[np.newaxis]
    return _plain_image(img, "shepp_logan_phantom", "a.u.")


def _plain_image(array, name: str, units: str) -> Volume:
    return planar_volume(array, name, units, meta={"Format": "scikit-image data"})
