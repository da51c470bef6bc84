"""The image families an out-of-distribution detector is chosen on (validation) and measured on (test).

Every image that is not a MedMNIST array reaches the model exactly as on the Classify page: read by the
upload loaders (:func:`medviz.io.load_path` / :func:`medviz.io.load_files`), one slice of the volume
(:func:`medviz.classification.preprocess.volume_slice`), the page's default window
(:func:`medviz.classification.preprocess.window_choices`, first entry) and
:func:`medviz.classification.preprocess.prepare_input`. MedMNIST arrays go through
:func:`medviz.classification.preprocess.preprocess_batch` (identical for 28-pixel uint8 images).

Validation families (choice of the score): the other classifiers' MedMNIST **val** splits, the LGG
**val**-patient slices and, where out of domain, the Kermany **val** chest X-rays. Test families
(``python -m medviz.evaluate --model NAME --ood``, :func:`evaluation_families`): the other classifiers' **test** splits, LGG **test**-patient
slices, CT and MR slices, ultrasound frames, fundus photographs, the Kermany **test** chest X-rays and
scikit-image's sample images. Families with no split (bundled DICOM, scikit-image) are test-only.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medviz.classification import kermany
from medviz.classification.data import DATASETS, DataError, load_npz_split, resolve_npz
from medviz.classification.preprocess import (
    input_abstain_reasons,
    prepare_input,
    preprocess_batch,
    volume_slice,
    window_choices,
)
from medviz.datasets import lgg
from medviz.io import load_example, load_files, load_path
from medviz.models.ood_record import data_dir as ood_data_dir
from medviz.models.specs import ClassifierSpec
from medviz.types import LoadError, MedvizError, Volume

#: Data sets whose source is the Kermany paediatric chest X-rays (that folder is the same domain for them).
KERMANY_SOURCES = frozenset({"pneumoniamnist"})
#: Models trained on the Kermany folder itself: its test split is their in-distribution test, and the
#: PneumoniaMNIST thumbnails are the same patients' radiographs at 28 px (reported apart, never chosen on).
LGG_DIR = "lgg_flair_mri_seg"
# the LGG patients of the validation OOD family: every non-test patient (59), so that the threshold rule sees
# the spread between patients (10 val patients did not show it: retina_resnet's third look)
LGG_VALIDATION_SPLITS = ("train", "val")
KERMANY_DIR = "cxr_pneumonia_kermany"

#: Bundled pydicom test files (``pydicom.data.get_testdata_file``), one encoding of each image.
PYDICOM_CT = ("CT_small.dcm", "693_J2KI.dcm", "dicomdirtests/77654033/CT2", "dicomdirtests/98892001/CT2N",
              "dicomdirtests/98892001/CT5N")
PYDICOM_MR = ("MR_small.dcm", "examples_overlay.dcm", "dicomdirtests/98892003/MR1", "dicomdirtests/98892003/MR2",
              "dicomdirtests/98892003/MR700")
PYDICOM_US = ("examples_ybr_color.dcm", "examples_rgb_color.dcm", "examples_palette.dcm", "examples_jpeg2k.dcm",
              "ExplVR_BigEnd.dcm")
#: Files and folders of the shared data directory (``../shared/data/MANIFEST.md``).
SHARED_CT = ("dicom_series_ct_totalsegmentator", "dicom_ct_3slice_with_liver_seg/01.dcm",
             "dicom_ct_3slice_with_liver_seg/02.dcm", "dicom_ct_3slice_with_liver_seg/03.dcm",
             "dicom_single_files/693_UNCI.dcm", "dicom_single_files/explicit_VR-UN.dcm",
             "dicom_single_files/eCT_Supplemental.dcm", "ct_abdomen_3d_totalsegmentator/example_ct_sm.nii.gz")
SHARED_MR = ("dicom_series_mr_prostate_adc_qin", "dicom_single_files/MR-SIEMENS-DICOM-WithOverlays.dcm",
             "dicom_single_files/MR2_J2KI.dcm", "dicom_single_files/emri_small.dcm",
             "ct_abdomen_3d_totalsegmentator/example_mr_sm.nii.gz")
SHARED_US = ("dicom_single_files/US1_J2KR.dcm", "dicom_single_files/OBXXXX1A_rle_2frame.dcm",
             "dicom_single_files/color-pl.dcm", "dicom_single_files/JPGLosslessP14SV1_1s_1f_8b.dcm")
#: scikit-image sample images shipped in its wheel (``skimage.data``); ``retina`` is the fundus family.
SKIMAGE = ("astronaut", "brick", "camera", "cat", "cell", "checkerboard", "clock", "coffee", "coins", "colorwheel",
           "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page", "rocket",
           "shepp_logan_phantom", "text")


@dataclass(frozen=True)
class PageImage:
    """One image as the Classify page hands it to the model: the slice, the default window, the modality."""

    image: np.ndarray
    window: Any
    modality: str
    n_slices: int
    source: str


@dataclass(frozen=True)
class Family:
    """A family of images: MedMNIST ``arrays`` ``(N, H, W[, 3])`` uint8, or page images.

    Attributes:
        name: short key (``lgg_mri``...).
        what: what the images are, in words.
        images: an array stack or a list of :class:`PageImage`.
        in_bar: counted in the project bar (False: the same domain as the model's data, reported apart).
        notes: files that could not be read, said in words.
    """

    name: str
    what: str
    images: Any
    in_bar: bool = True
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


def page_images(volume: Volume, source: str) -> list[PageImage]:
    """Every slice (frame) of ``volume`` as the Classify page would classify it."""
    out = []
    for z in range(volume.shape[0]):
        image = volume_slice(volume, z)
        windows = window_choices(volume, image)
        out.append(PageImage(image, next(iter(windows.values())) if windows else None, volume.modality,
                             volume.shape[0], f"{source}[{z}]"))
    return out


def _load(path: Path, label: str, notes: list[str]) -> Iterator[PageImage]:
    try:
        result = load_path(path)
    except (LoadError, MedvizError) as e:
        notes.append(f"{label}: {e}")
        return
    for s in result.series:
        yield from page_images(s.volume, f"{label}:{s.key}")


def _pydicom(names: tuple[str, ...], notes: list[str]) -> Iterator[PageImage]:
    from importlib import resources

    root = Path(str(resources.files("pydicom.data").joinpath("test_files")))
    for name in names:
        path = root / name
        if not path.exists():
            notes.append(f"pydicom {name}: not in the installed wheel")
            continue
        yield from _load(path, f"pydicom/{name}", notes)


def _shared(data_dir: Path, names: tuple[str, ...], notes: list[str]) -> Iterator[PageImage]:
    for name in names:
        path = data_dir / name
        if not path.exists():
            notes.append(f"{name}: not in the data folder")
            continue
        yield from _load(path, name, notes)


def _png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    a = np.asarray(array)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = np.clip(np.round(255 * (a - a.min()) / max(float(np.ptp(a)), 1e-6)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a[..., :3] if a.ndim == 3 else a).save(buf, format="PNG")
    return buf.getvalue()


def skimage_images(notes: list[str]) -> list[PageImage]:
    """scikit-image's bundled sample images, uploaded as PNG (the Shepp-Logan phantom as its bundled example)."""
    from skimage import data

    out: list[PageImage] = []
    for name in SKIMAGE:
        try:
            if name == "shepp_logan_phantom":
                out += page_images(load_example("shepp_logan"), "skimage/shepp_logan_phantom")
                continue
            array = getattr(data, name)()
        except (OSError, ValueError, ImportError, AttributeError, LoadError) as e:  # a file the wheel lacks
            notes.append(f"skimage.data.{name}: unavailable offline ({type(e).__name__})")
            continue
        result = load_files([(f"{name}.png", _png_bytes(array))])
        out += page_images(result.series[0].volume, f"skimage/{name}")
    return out


def lgg_images(data_dir: Path, split: str | tuple[str, ...]) -> list[PageImage]:
    """Every slice PNG of the LGG ``split`` patients (one split name or several; RGB composites: T1 pre, FLAIR,
    T1 post), uploaded as PNG."""
    root = data_dir / LGG_DIR
    if lgg.read_splits(root) is None:  # without splits.json every case is in every split, test included
        raise DataError(f"{root} has no splits.json: the OOD families need its patient split (train, val, test)")
    keep = {case for name in ((split,) if isinstance(split, str) else split) for case in lgg.cases(root, name)}
    out, notes = [], []
    for pair in lgg.read_pairs(root):
        if pair.case_id in keep:
            out += _load(pair.image, pair.image.name, notes)
    return out


def kermany_images(data_dir: Path, split: str) -> list[PageImage]:
    """Every JPEG of the Kermany ``split`` (paediatric chest X-rays, shorter side 256 px)."""
    root = data_dir / KERMANY_DIR / split
    out, notes = [], []
    for path in sorted(root.glob("*/*.jpg")):
        out += _load(path, f"{split}/{path.parent.name}/{path.name}", notes)
    return out


def _medmnist(spec: ClassifierSpec, split: str, data: Path | None, choosing: bool = False) -> list[Family]:
    """The other MedMNIST sets' ``split``; for a model trained on the Kermany folder, PneumoniaMNIST is its own
    domain: left out when ``choosing`` the score, else reported apart (not in the bar)."""
    out = []
    for key, info in DATASETS.items():
        if key == spec.dataset_key:
            continue
        same = spec.dataset_key == kermany.KEY and key in KERMANY_SOURCES
        if same and choosing:
            continue
        images, _ = load_npz_split(resolve_npz(info, data), split)
        what = f"{info.title} {split} split ({info.modality_label})"
        out.append(Family(key, what + (": the same domain as the model's Kermany radiographs, at 28 px" if same
                                        else ""), images, in_bar=not same))
    return out


def _kermany_in_domain(spec: ClassifierSpec) -> bool:
    return (spec.dataset_key or "") in KERMANY_SOURCES | {kermany.KEY}


def validation_families(spec: ClassifierSpec, data: Path | None = None) -> dict[str, Family]:
    """The OOD families the score is chosen on (val splits only; never a test image)."""
    root = ood_data_dir(data)
    fams = {f.name: f for f in _medmnist(spec, "val", data, choosing=True)}
    fams["lgg_mri"] = Family("lgg_mri", "LGG brain MRI slices, the train and val patients (no classifier was "
                             "trained on them)", lgg_images(root, LGG_VALIDATION_SPLITS))
    if not _kermany_in_domain(spec):
        fams["kermany_cxr"] = Family("kermany_cxr", "Kermany paediatric chest X-rays, val", kermany_images(root, "val"))
    return fams


def evaluation_families(spec: ClassifierSpec, data: Path | None = None) -> list[Family]:
    """Every OOD family available offline, for the one test look (the model's own data excluded)."""
    root = ood_data_dir(data)
    fams = _medmnist(spec, "test", data)
    fams.append(Family("lgg_mri", "LGG brain MRI slices (FLAIR composite PNG), 6 test patients",
                       lgg_images(root, "test")))
    for name, what, bundled, shared in (
            ("ct", "CT slices (pydicom bundled DICOM + shared DICOM series/files + NIfTI CT)", PYDICOM_CT, SHARED_CT),
            ("mr", "MR slices (pydicom bundled DICOM + shared DICOM series/files + NIfTI MR)", PYDICOM_MR, SHARED_MR),
            ("ultrasound", "ultrasound frames (bundled us_multiframe echo clip and other US DICOM)", PYDICOM_US,
             SHARED_US)):
        notes: list[str] = []
        images = list(_pydicom(bundled, notes)) + list(_shared(root, shared, notes))
        fams.append(Family(name, what, images, notes=notes))
    if spec.dataset_key != "retinamnist":
        fams.append(Family("fundus", "colour fundus photograph (bundled retina_photo, skimage.data.retina)",
                           page_images(load_example("retina_photo"), "retina_photo")))
    same = _kermany_in_domain(spec)
    if spec.dataset_key != kermany.KEY:  # for a Kermany model these are its own in-distribution test images
        fams.append(Family("kermany_cxr", "Kermany paediatric chest X-rays, test (624)"
                           + (": the same domain as PneumoniaMNIST (its source) at 256 px, not out of distribution"
                              if same else ""), kermany_images(root, "test"), in_bar=not same))
    notes = []
    fams.append(Family("skimage", "scikit-image sample images (photos, micrographs, text, phantom)",
                       skimage_images(notes), notes=notes))
    return fams


def family_inputs(spec: ClassifierSpec, images: Any) -> tuple[np.ndarray, list[list[str]]]:
    """Model inputs ``(N, C, S, S)`` and the input-check abstention reasons of each image of a family."""
    inp = spec.input
    if isinstance(images, Family):
        images = images.images
    if isinstance(images, np.ndarray) or (isinstance(images, list) and images and isinstance(images[0], np.ndarray)):
        return (preprocess_batch(images, inp.channels, inp.size),
                [input_abstain_reasons(im, inp, None) for im in images])
    xs, reasons = [], []
    for item in images:
        xs.append(prepare_input(item.image, spec, item.window, item.modality, item.n_slices).x)
        reasons.append(input_abstain_reasons(item.image, inp, item.modality))
    if not xs:
        raise DataError("the family holds no images")
    return np.stack(xs), reasons
