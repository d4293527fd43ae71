"""The job's preprocessing spec: every hospital prepares its own table with the job's constants,
and any change of preparation is a change of the on-chain spec digest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from api.cli.job import load_spec, spec_cid, spec_toml
from fl_node.data import DatasetError, apply_preprocessing, draft_preprocessing, load_examples
from fl_node.example_data import write_example_tables
from fl_node.spec import CategoricalColumn, ModelSpec, NumericColumn, PreprocessingSpec, default_spec
from ledger.store import cid_of

PREP = PreprocessingSpec(
    label="outcome",
    classes=("no", "yes"),
    columns=(
        NumericColumn(name="age", mean=50.0, scale=10.0, fill=45.0),
        CategoricalColumn(name="ward", categories=("a", "b")),
    ),
)


def _table(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.csv"
    path.write_text(text)
    return path


def test_rows_are_scaled_encoded_and_imputed_with_the_jobs_constants(tmp_path: Path) -> None:
    path = _table(tmp_path, "outcome,ward,age,ignored\nyes,a,60,x\nno,c,,y\nyes,b,40,z\n,a,1,w\n")
    examples = apply_preprocessing(PREP, path, label="outcome")
    # age: (60-50)/10, missing -> fill 45 -> -0.5, (40-50)/10; ward one-hot, unknown 'c' -> zeros;
    # the row without a label is skipped; columns the spec does not list are ignored.
    assert examples.x.tolist() == [[1.0, 1.0, 0.0], [-0.5, 0.0, 0.0], [-1.0, 0.0, 1.0]]
    assert examples.y.tolist() == [1, 0, 1]
    assert examples.x.dtype == np.float32


def test_two_hospitals_prepare_the_same_row_identically(tmp_path: Path) -> None:
    # Own statistics per hospital would map the same patient to different features.
    a = _table(tmp_path, "outcome,ward,age\nyes,a,60\nno,b,20\n")
    b = tmp_path / "b.csv"
    b.write_text("ward,age,outcome\na,60,yes\na,90,no\na,95,no\n")
    first = apply_preprocessing(PREP, a).x[0]
    second = apply_preprocessing(PREP, b).x[0]
    assert first.tolist() == second.tolist()


@pytest.mark.parametrize(
    ("text", "label", "message"),
    [
        ("outcome,ward,age\nmaybe,a,1\n", None, "label values ['maybe'] are not among the job's classes"),
        ("outcome,ward\nyes,a\n", None, "has no feature column 'age'"),
        ("outcome,ward,age\nyes,a,old\n", None, "column 'age' is numeric in the job, but holds 'old'"),
        ("diagnosis,ward,age\nyes,a,1\n", None, "has no label column 'outcome'"),
        ("outcome,ward,age\nyes,a,1\n", "diagnosis", "the job's preprocessing uses 'outcome'"),
    ],
)
def test_a_table_that_does_not_fit_the_job_is_refused(
    tmp_path: Path, text: str, label: str | None, message: str
) -> None:
    with pytest.raises(DatasetError, match=None) as raised:
        apply_preprocessing(PREP, _table(tmp_path, text), label=label)
    assert message in str(raised.value)


def test_a_table_needs_a_preprocessing_spec(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as raised:
        load_examples(_table(tmp_path, "outcome,age\nyes,1\n"), None)
    assert "has no preprocessing section" in str(raised.value)


def test_the_preprocessing_is_part_of_the_spec_digest() -> None:
    spec = ModelSpec(input_dim=3, num_classes=2, preprocessing=PREP)
    other_scale = PREP.model_copy(
        update={"columns": (NumericColumn(name="age", mean=50.0, scale=11.0, fill=45.0), PREP.columns[1])}
    )
    other = ModelSpec(input_dim=3, num_classes=2, preprocessing=other_scale)
    assert spec.spec_digest() != other.spec_digest()
    # A spec without preprocessing keeps the digest it had before preprocessing existed.
    plain = default_spec(3, 2)
    assert b"preprocessing" not in plain.canonical_json()
    # The digest is the content root of the spec file's CID: found in a CAR by the on-chain digest.
    assert spec_cid(spec) == cid_of(spec.canonical_json())


def test_the_model_must_fit_the_preprocessing() -> None:
    with pytest.raises(ValueError, match="gives 3 features and 2 classes, but the model has input_dim 4"):
        ModelSpec(input_dim=4, num_classes=2, preprocessing=PREP)


def test_drafted_spec_round_trips_through_toml_with_the_same_digest(tmp_path: Path) -> None:
    _, _, reference = write_example_tables(tmp_path / "data", 2)
    preprocessing = draft_preprocessing(reference, label="diagnosis")
    spec = ModelSpec(
        input_dim=preprocessing.width, num_classes=len(preprocessing.classes), preprocessing=preprocessing
    )
    path = tmp_path / "spec.toml"
    path.write_text(spec_toml(spec))
    assert load_spec(path).spec_digest() == spec.spec_digest()
    assert preprocessing.classes == ("benign", "malignant")
    assert isinstance(preprocessing.columns[0], CategoricalColumn)  # `site`
    # Missing cells in the example tables are filled, never NaN.
    hospital = load_examples(tmp_path / "data" / "hospital-a.csv", preprocessing, label="diagnosis")
    assert np.isfinite(hospital.x).all() and hospital.x.shape[1] == spec.input_dim


def test_an_unknown_spec_setting_is_named(tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text("[model]\ninput_dim = 3\nnum_classes = 2\nlearning_rate = 0.1\n")
    with pytest.raises(ValueError, match=r"unknown \[model\] setting\(s\) \['learning_rate'\]"):
        load_spec(path)
