"""Loading, splitting and partitioning real data; partition files with fixed bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from fl_node.data import (
    DatasetError,
    PartitionScheme,
    load_dataset,
    make_partitions,
    partition_indices,
    read_partition,
    stratified_split,
)
from fl_node.errors import FLError


@pytest.fixture(scope="module")
def digits_labels() -> np.ndarray:
    return load_dataset("digits", seed=0).y_train


def test_builtin_datasets_are_standardised_and_stratified() -> None:
    for name, features, classes in (("digits", 64, 10), ("breast_cancer", 30, 2)):
        ds = load_dataset(name, seed=3)
        assert ds.num_features == features and ds.num_classes == classes
        assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
        np.testing.assert_allclose(ds.x_train.mean(axis=0), 0, atol=1e-4)
        train_share = np.bincount(ds.y_train) / ds.y_train.size
        test_share = np.bincount(ds.y_test) / ds.y_test.size
        np.testing.assert_allclose(train_share, test_share, atol=0.02)
    again = load_dataset("digits", seed=3)
    assert np.array_equal(again.x_test, load_dataset("digits", seed=3).x_test)
    assert not np.array_equal(again.y_test, load_dataset("digits", seed=4).y_test)


def test_stratified_split_is_disjoint_and_covers_everything() -> None:
    y = np.array([0] * 10 + [1] * 5 + [2], dtype=np.int64)
    train, test = stratified_split(y, 0.2, seed=1)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(16))
    assert np.bincount(y[test], minlength=3).tolist() == [2, 1, 0]  # the single "2" stays in training


@pytest.mark.parametrize("scheme", ["iid", "dirichlet(0.3)", "dominant"])
def test_partitions_deterministic_disjoint_non_empty(digits_labels: np.ndarray, scheme: str) -> None:
    parts = partition_indices(digits_labels, 10, scheme, seed=5)
    assert len(parts) == 10 and all(p.size > 0 for p in parts)
    joined = np.concatenate(parts)
    assert np.unique(joined).size == joined.size  # disjoint
    again = partition_indices(digits_labels, 10, scheme, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = partition_indices(digits_labels, 10, scheme, seed=6)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def test_dominant_split_is_eighty_percent_one_class(digits_labels: np.ndarray) -> None:
    parts = partition_indices(digits_labels, 10, "dominant", seed=0)
    for node, idx in enumerate(parts):
        share = float(np.mean(digits_labels[idx] == node))
        assert 0.78 <= share <= 0.82, (node, share)
    # Twenty nodes on ten classes: two nodes share each dominant class, still 80%.
    for node, idx in enumerate(partition_indices(digits_labels, 20, "dominant(0.8)", seed=0)):
        assert 0.75 <= float(np.mean(digits_labels[idx] == node % 10)) <= 0.85


def test_dirichlet_small_alpha_is_skewed_and_iid_is_not(digits_labels: np.ndarray) -> None:
    def top_share(parts: list[np.ndarray]) -> float:
        return float(np.mean([np.bincount(digits_labels[p]).max() / p.size for p in parts]))

    assert top_share(partition_indices(digits_labels, 10, "dirichlet(0.1)", seed=0)) > 0.5
    assert top_share(partition_indices(digits_labels, 10, "iid", seed=0)) < 0.25


def test_every_node_non_empty_even_when_tight() -> None:
    y = np.array([0, 0, 0, 1, 1, 1], dtype=np.int64)
    for scheme in ("iid", "dirichlet(0.01)", "dominant"):
        parts = partition_indices(y, 6, scheme, seed=2)
        assert all(p.size >= 1 for p in parts)


def test_partition_scheme_parsing() -> None:
    assert PartitionScheme.parse("dirichlet:0.3") == PartitionScheme("dirichlet", alpha=0.3)
    assert str(PartitionScheme.parse("Dominant(0.9)")) == "dominant(0.9)"
    with pytest.raises(DatasetError, match=r"unknown partition 'dirichlett'.*did you mean 'dirichlet'"):
        PartitionScheme.parse("dirichlett")
    with pytest.raises(DatasetError, match=r"alpha must be > 0, got 0\.0"):
        PartitionScheme.parse("dirichlet(0)")
    with pytest.raises(DatasetError, match="only 3 examples"):
        partition_indices(np.array([0, 1, 0], dtype=np.int64), 4, "iid", seed=0)


def test_partition_file_bytes_fixed_and_readable(tmp_path: Path) -> None:
    ds = load_dataset("breast_cancer", seed=0)
    parts = make_partitions(ds, 4, "iid", seed=1)
    first = [p.to_bytes() for p in parts]
    second = [p.to_bytes() for p in make_partitions(load_dataset("breast_cancer", seed=0), 4, "iid", seed=1)]
    assert first == second
    assert len({hashlib.sha256(b).hexdigest() for b in first}) == 4
    path = parts[2].write(tmp_path / "node2.npz")
    back = read_partition(path, node=2)
    assert np.array_equal(back.x, parts[2].x) and np.array_equal(back.y, parts[2].y)
    with np.load(path) as archive:  # a plain numpy reader opens it too
        assert archive["x"].shape == parts[2].x.shape
    corrupt = tmp_path / "bad.npz"
    corrupt.write_bytes(first[0][:100])
    with pytest.raises(DatasetError, match="is not a partition file"):
        read_partition(corrupt)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_user_csv_with_mixed_scales_strings_and_missing_values_trains_ready(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = ["income,age,city,notes,diagnosis"]
    for i in range(200):
        sick = i % 2 == 0
        income = rng.normal(90_000 if sick else 40_000, 5_000)
        age = "" if i % 17 == 0 else f"{rng.normal(60 if sick else 30, 5):.1f}"
        city = ["Bern", "Basel", "NA"][i % 3]
        lines.append(f"{income:.2f},{age},{city},free text {i},{'malignant' if sick else 'benign'}")
    ds = load_dataset(_write(tmp_path / "patients.csv", "\n".join(lines)), label="diagnosis", seed=0)
    assert ds.class_names == ("benign", "malignant")
    assert ds.feature_names == ("income", "age", "city=Basel", "city=Bern")
    assert ds.dropped_columns == ("notes",)
    assert np.isfinite(ds.x_train).all() and np.isfinite(ds.x_test).all()
    np.testing.assert_allclose(ds.x_train[:, :2].std(axis=0), 1.0, atol=1e-3)


def test_csv_errors_are_clear(tmp_path: Path) -> None:
    good = _write(tmp_path / "ok.csv", "a,b,label\n1,2,x\n3,4,y\n")
    with pytest.raises(
        DatasetError, match=r"no label column 'lable'; columns are: a, b, label \(did you mean 'label'\?\)"
    ):
        load_dataset(good, label="lable")
    with pytest.raises(DatasetError, match="is empty"):
        load_dataset(_write(tmp_path / "empty.csv", ""), label="label")
    with pytest.raises(DatasetError, match="has a header but no data rows"):
        load_dataset(_write(tmp_path / "header.csv", "a,label\n"), label="label")
    with pytest.raises(DatasetError, match="single class 'x'"):
        load_dataset(_write(tmp_path / "one.csv", "a,label\n1,x\n2,x\n"), label="label")
    with pytest.raises(DatasetError, match="row 3: 2 fields, the header has 3"):
        load_dataset(_write(tmp_path / "ragged.csv", "a,b,label\n1,2,x\n3,y\n"), label="label")
    with pytest.raises(DatasetError, match="no such CSV file"):
        load_dataset(tmp_path / "missing.csv", label="label")
    with pytest.raises(FLError, match=r"unknown dataset 'digit'.*did you mean 'digits'"):
        load_dataset("digit")
    with pytest.raises(DatasetError, match="needs the name of its label column"):
        load_dataset(good)
    assert good.read_text() == "a,b,label\n1,2,x\n3,4,y\n"  # loading never touches the file
