"""Real data for the nodes: bundled scikit-learn sets or a user's CSV, split and partitioned.

Preprocessing is fitted once, on the training split of the whole dataset, before it is
partitioned (global statistics, not per node). The simulation and the embedded runner
stand in for a consortium that agreed one preprocessing recipe, and one recipe means a
feature has the same meaning on every node and in the test set; per-node statistics would
give every node a differently scaled input space and a global model that fits none of
them. Everything is deterministic: the same source, seed and options give the same arrays
and the same partition file bytes on every run.

A partition file is an `.npz` (arrays `x` float32 [n, d] and `y` int64 [n]) written with
fixed zip metadata, so its bytes, and therefore its CID (the on-chain dataset id), depend
only on its content.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from .errors import FLError
from .spec import CategoricalColumn, NumericColumn, PreprocessingSpec

FloatArray = npt.NDArray[np.float32]
LabelArray = npt.NDArray[np.int64]
IndexArray = npt.NDArray[np.int64]

BUILTIN_DATASETS = ("breast_cancer", "digits")
PARTITION_SCHEMES = ("iid", "dirichlet", "dominant")
# Values a CSV uses for "unknown"; compared after stripping and lower-casing.
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-"})
# A string column with at most this many distinct values is one-hot encoded; wider string
# columns (names, free text, ids) carry no learnable signal for an MLP and are dropped.
MAX_CATEGORIES = 32


class DatasetError(FLError, ValueError):
    """A dataset cannot be loaded, split or partitioned as asked; the message says why."""


@dataclass(frozen=True)
class Dataset:
    """A prepared classification dataset: standardised float32 features, int64 labels."""

    name: str
    x_train: FloatArray
    y_train: LabelArray
    x_test: FloatArray
    y_test: LabelArray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    dropped_columns: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def num_features(self) -> int:
        """Width of the feature matrix after encoding."""
        return int(self.x_train.shape[1])

    @property
    def num_classes(self) -> int:
        """Number of label classes."""
        return len(self.class_names)


@dataclass(frozen=True)
class Partition:
    """One node's share of the training split."""

    node: int
    x: FloatArray
    y: LabelArray

    @property
    def num_examples(self) -> int:
        """Number of examples this node holds."""
        return int(self.y.shape[0])

    def to_bytes(self) -> bytes:
        """Canonical `.npz` bytes: same content, same bytes (its CID is the dataset id)."""
        return partition_bytes(self.x, self.y)

    def write(self, path: Path) -> Path:
        """Write the canonical file to `path` and return the path."""
        path.write_bytes(self.to_bytes())
        return path


@dataclass(frozen=True)
class PartitionScheme:
    """How the training split is dealt to nodes; parse user text with `parse`."""

    kind: Literal["iid", "dirichlet", "dominant"]
    alpha: float = 0.5
    dominant_fraction: float = 0.8

    @classmethod
    def parse(cls, text: str | PartitionScheme) -> PartitionScheme:
        """`iid`, `dirichlet`, `dirichlet(0.3)` / `dirichlet:0.3`, `dominant`, `dominant(0.9)`."""
        if isinstance(text, PartitionScheme):
            return text
        match = re.fullmatch(r"\s*([a-z_]+)\s*(?:[(:=]\s*([0-9.eE+-]+)\s*\)?)?\s*", text.lower())
        if match is None or match.group(1) not in PARTITION_SCHEMES:
            word = match.group(1) if match else text
            raise DatasetError(
                f"unknown partition {text!r}; valid: iid, dirichlet(alpha), dominant(fraction)"
                + _did_you_mean(word, PARTITION_SCHEMES)
            )
        kind = match.group(1)
        value = match.group(2)
        if value is None:
            return cls(kind=kind)  # type: ignore[arg-type]
        try:
            number = float(value)
        except ValueError:
            raise DatasetError(f"partition {text!r}: {value!r} is not a number") from None
        if kind == "iid":
            raise DatasetError(f"partition {text!r}: iid takes no parameter")
        if kind == "dirichlet":
            if not (number > 0 and math.isfinite(number)):
                raise DatasetError(f"partition {text!r}: dirichlet alpha must be > 0, got {number}")
            return cls(kind="dirichlet", alpha=number)
        if not 0 < number <= 1:
            raise DatasetError(f"partition {text!r}: dominant fraction must be in (0, 1], got {number}")
        return cls(kind="dominant", dominant_fraction=number)

    def __str__(self) -> str:
        if self.kind == "dirichlet":
            return f"dirichlet({self.alpha:g})"
        if self.kind == "dominant":
            return f"dominant({self.dominant_fraction:g})"
        return "iid"


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------------------- loading


def load_dataset(
    source: str | Path,
    *,
    label: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """Load `breast_cancer`, `digits` or a CSV file (`label` names its label column).

    Returns standardised features (statistics from the training split) and a stratified
    train/test split drawn from `seed`.
    """
    if not 0 < test_fraction < 1:
        raise DatasetError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    text = str(source)
    if text in BUILTIN_DATASETS:
        if label is not None:
            raise DatasetError(f"--label applies to CSV files only; {text!r} is a bundled dataset")
        return _load_builtin(text, test_fraction, seed)
    path = Path(text)
    if path.suffix.lower() != ".csv" and not path.exists():
        raise DatasetError(
            f"unknown dataset {text!r}: use one of {', '.join(BUILTIN_DATASETS)} or a path to a .csv file"
            + _did_you_mean(text, BUILTIN_DATASETS)
        )
    if label is None:
        raise DatasetError(f"{path}: a CSV needs the name of its label column (label=...)")
    return load_csv(path, label=label, test_fraction=test_fraction, seed=seed)


def _load_builtin(name: str, test_fraction: float, seed: int) -> Dataset:
    # Imported here: scikit-learn is slow to import and only the bundled sets need it.
    from sklearn import datasets as sk

    bunch = sk.load_breast_cancer() if name == "breast_cancer" else sk.load_digits()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    feature_names = tuple(str(f) for f in bunch.feature_names)
    class_names = tuple(str(c) for c in bunch.target_names)
    train, test = stratified_split(y, test_fraction, seed)
    mean, scale = _fit_standardizer(x[train])
    return Dataset(
        name=name,
        x_train=_standardize(x[train], mean, scale),
        y_train=y[train],
        x_test=_standardize(x[test], mean, scale),
        y_test=y[test],
        feature_names=feature_names,
        class_names=class_names,
    )


def load_csv(path: Path, *, label: str, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Load a CSV with a header row; every column but `label` is a feature.

    Numeric columns are standardised (missing values imputed with the training mean);
    string columns with at most `MAX_CATEGORIES` values are one-hot encoded (missing is its
    own category); wider string columns are dropped and listed in `dropped_columns`.
    Labels may be strings or numbers; rows without a label are dropped.
    """
    header, body = read_table(path)
    if label not in header:
        raise DatasetError(
            f"{path} has no label column {label!r}; columns are: {', '.join(header)}"
            + _did_you_mean(label, header)
        )
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DatasetError(f"{path}, row {line}: {len(row)} fields, the header has {len(header)}")
    label_at = header.index(label)
    labelled = [row for row in body if row[label_at].strip().lower() not in MISSING_MARKERS]
    notes: list[str] = []
    if len(labelled) < len(body):
        notes.append(f"dropped {len(body) - len(labelled)} rows without a label")
    if not labelled:
        raise DatasetError(f"{path}: column {label!r} has no values")
    y, class_names = _encode_labels([row[label_at].strip() for row in labelled])
    if len(class_names) < 2:
        raise DatasetError(
            f"{path}: label column {label!r} has a single class {class_names[0]!r}; "
            "a classifier needs at least two"
        )
    train, test = stratified_split(y, test_fraction, seed)
    feature_blocks: list[npt.NDArray[np.float64]] = []
    feature_names: list[str] = []
    dropped: list[str] = []
    for at, name in enumerate(header):
        if at == label_at:
            continue
        cells = [row[at].strip() for row in labelled]
        numeric = _parse_numeric(cells)
        if numeric is not None:
            if np.isnan(numeric[train]).all():
                dropped.append(name)
                continue
            mean = float(np.nanmean(numeric[train]))
            numeric = np.where(np.isnan(numeric), mean, numeric)
            feature_blocks.append(numeric[:, None])
            feature_names.append(name)
            continue
        categories = sorted({c for c in (cells[i] for i in train) if c.lower() not in MISSING_MARKERS})
        if not categories or len(categories) > MAX_CATEGORIES:
            dropped.append(name)
            continue
        # Categories come from the training split; a test value never seen in training
        # maps to all zeros, as it would for a node meeting a new value.
        index = {c: i for i, c in enumerate(categories)}
        block = np.zeros((len(cells), len(categories)), dtype=np.float64)
        for row_at, cell in enumerate(cells):
            hit = index.get(cell)
            if hit is not None:
                block[row_at, hit] = 1.0
        feature_blocks.append(block)
        feature_names.extend(f"{name}={c}" for c in categories)
    if not feature_blocks:
        raise DatasetError(
            f"{path}: no usable feature columns besides {label!r} "
            f"(dropped: {', '.join(dropped) or 'none'}); numeric columns or string columns with "
            f"at most {MAX_CATEGORIES} distinct values are needed"
        )
    x = np.concatenate(feature_blocks, axis=1)
    mean_vec, scale = _fit_standardizer(x[train])
    return Dataset(
        name=path.stem,
        x_train=_standardize(x[train], mean_vec, scale),
        y_train=y[train],
        x_test=_standardize(x[test], mean_vec, scale),
        y_test=y[test],
        feature_names=tuple(feature_names),
        class_names=class_names,
        dropped_columns=tuple(dropped),
        notes=tuple(notes),
    )


def _parse_numeric(cells: Sequence[str]) -> npt.NDArray[np.float64] | None:
    """The column as floats (NaN where missing), or None when any value is not a number."""
    values = np.empty(len(cells), dtype=np.float64)
    for at, cell in enumerate(cells):
        if cell.lower() in MISSING_MARKERS:
            values[at] = np.nan
            continue
        try:
            value = float(cell)
        except ValueError:
            return None
        if not math.isfinite(value):
            return None
        values[at] = value
    return values


def _encode_labels(cells: Sequence[str]) -> tuple[LabelArray, tuple[str, ...]]:
    """Integer codes in sorted class order (numeric order when every label is a number)."""
    distinct = set(cells)
    try:
        ordered = sorted(distinct, key=lambda c: (float(c), c))
    except ValueError:
        ordered = sorted(distinct)
    index = {c: i for i, c in enumerate(ordered)}
    return np.array([index[c] for c in cells], dtype=np.int64), tuple(ordered)


def _fit_standardizer(x: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    # A constant column (a blank pixel border in digits) carries no information; scale 1
    # keeps it at zero instead of dividing by zero.
    scale = np.where(scale > 1e-12, scale, 1.0)
    return mean, scale


def _standardize(
    x: npt.NDArray[np.float64], mean: npt.NDArray[np.float64], scale: npt.NDArray[np.float64]
) -> FloatArray:
    return np.ascontiguousarray(((x - mean) / scale).astype(np.float32))


# ---------------------------------------------------------------------------- splitting


def stratified_split(y: LabelArray, test_fraction: float, seed: int) -> tuple[IndexArray, IndexArray]:
    """Sorted train and test indices with each class split in the same proportion.

    Classes with a single example go to training (the model must see every class once).
    """
    rng = np.random.default_rng(seed)
    train: list[IndexArray] = []
    test: list[IndexArray] = []
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        members = members[rng.permutation(members.size)]
        n_test = round(members.size * test_fraction) if members.size > 1 else 0
        n_test = min(max(n_test, 1 if members.size > 1 else 0), members.size - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)).astype(np.int64), np.sort(np.concatenate(test)).astype(np.int64)


def partition_indices(
    y: LabelArray, nodes: int, scheme: str | PartitionScheme, seed: int
) -> list[IndexArray]:
    """Deal the indices of `y` to `nodes` nodes; deterministic in `seed`, every node non-empty.

    - `iid`: a uniform shuffle cut into near-equal parts.
    - `dirichlet(alpha)`: each class is split across nodes in Dirichlet(alpha) proportions
      (small alpha = more skew); redrawn until no node is empty.
    - `dominant(f)`: node i draws a fraction f of its examples from class i mod C and the
      rest from the other classes (the seed's "80% of one class" split).
    """
    parsed = PartitionScheme.parse(scheme)
    if nodes < 1:
        raise DatasetError(f"need at least one node, got {nodes}")
    if nodes > y.size:
        raise DatasetError(f"cannot give {nodes} nodes at least one example each: only {y.size} examples")
    rng = np.random.default_rng(seed)
    if parsed.kind == "iid":
        parts = np.array_split(rng.permutation(y.size), nodes)
    elif parsed.kind == "dirichlet":
        parts = _dirichlet(y, nodes, parsed.alpha, rng)
    else:
        parts = _dominant(y, nodes, parsed.dominant_fraction, rng)
    return [np.sort(p).astype(np.int64) for p in parts]


def _dirichlet(y: LabelArray, nodes: int, alpha: float, rng: np.random.Generator) -> list[IndexArray]:
    classes = np.unique(y)
    for _ in range(100):
        buckets: list[list[IndexArray]] = [[] for _ in range(nodes)]
        for cls in classes:
            members = np.flatnonzero(y == cls)
            members = members[rng.permutation(members.size)]
            shares = rng.dirichlet(np.full(nodes, alpha))
            cuts = (np.cumsum(shares)[:-1] * members.size).astype(np.int64)
            for node, piece in enumerate(np.split(members, cuts)):
                buckets[node].append(piece)
        parts = [np.concatenate(b) for b in buckets]
        if min(p.size for p in parts) > 0:
            return parts
    # Very small alpha with many nodes can leave a node empty every time; hand each empty
    # node one example from the largest node rather than fail.
    for node, part in enumerate(parts):
        if part.size == 0:
            donor = max(range(nodes), key=lambda i: parts[i].size)
            parts[node], parts[donor] = parts[donor][-1:], parts[donor][:-1]
    return parts


def _dominant(y: LabelArray, nodes: int, fraction: float, rng: np.random.Generator) -> list[IndexArray]:
    classes = np.unique(y)
    pools = {int(c): list(rng.permutation(np.flatnonzero(y == c))) for c in classes}
    sizes = [len(p) for p in np.array_split(np.arange(y.size), nodes)]
    dominant = [int(classes[i % classes.size]) for i in range(nodes)]
    # Nodes sharing a dominant class split its pool; each takes its quota of it first.
    sharing = {c: dominant.count(c) for c in set(dominant)}
    quota = [
        min(round(sizes[i] * fraction), len(pools[dominant[i]]) // sharing[dominant[i]]) for i in range(nodes)
    ]
    parts: list[list[int]] = []
    for i in range(nodes):
        taken = pools[dominant[i]][: quota[i]]
        del pools[dominant[i]][: quota[i]]
        parts.append(list(taken))
    # The rest of each node is a uniform draw from what is left of the other classes, sized
    # so that the dominant class makes up exactly `fraction` of the node.
    for i in range(nodes):
        want = sizes[i] if quota[i] == 0 else round(quota[i] * (1 - fraction) / fraction)
        others = [c for c in sorted(pools) if c != dominant[i]]
        candidates = [(c, at) for c in others for at in range(len(pools[c]))]
        if want == 0 or not candidates:
            continue
        picks = rng.choice(len(candidates), size=min(want, len(candidates)), replace=False)
        chosen = sorted((candidates[int(k)] for k in picks), key=lambda ca: (ca[0], -ca[1]))
        for c, at in chosen:  # descending positions per class keep earlier positions valid
            parts[i].append(pools[c].pop(at))
    if any(not p for p in parts):
        raise DatasetError(
            f"dominant split cannot give every one of {nodes} nodes an example: "
            f"only {y.size} examples in {classes.size} classes"
        )
    return [np.array(p, dtype=np.int64) for p in parts]


def make_partitions(
    dataset: Dataset, nodes: int, scheme: str | PartitionScheme, seed: int
) -> list[Partition]:
    """The training split dealt to `nodes` nodes (see `partition_indices`)."""
    return [
        Partition(node=i, x=np.ascontiguousarray(dataset.x_train[idx]), y=dataset.y_train[idx])
        for i, idx in enumerate(partition_indices(dataset.y_train, nodes, scheme, seed))
    ]


# ---------------------------------------------------------------------------- files

# Zip's DOS timestamp floor: a fixed date keeps the file bytes a function of the content.
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def partition_bytes(x: FloatArray, y: LabelArray) -> bytes:
    """Canonical `.npz` bytes (stored, fixed timestamps) of a partition; `np.load` reads them."""
    x = np.ascontiguousarray(x, dtype="<f4")
    y = np.ascontiguousarray(y, dtype="<i8")
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DatasetError(f"partition needs x [n, d] and y [n], got {x.shape} and {y.shape}")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in (("x.npy", x), ("y.npy", y)):
            member = io.BytesIO()
            np.lib.format.write_array(member, array, version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(name, date_time=_FIXED_ZIP_TIME)
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


def read_partition(source: Path | bytes, node: int = 0) -> Partition:
    """Read a partition file written by `Partition.write` (or its bytes)."""
    raw = source.read_bytes() if isinstance(source, Path) else source
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            x = np.asarray(archive["x"], dtype=np.float32)
            y = np.asarray(archive["y"], dtype=np.int64)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile, EOFError) as error:
        where = source if isinstance(source, Path) else "partition bytes"
        raise DatasetError(f"{where} is not a partition file (.npz with x and y): {error}") from None
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DatasetError(f"partition file holds x {x.shape} and y {y.shape}; expected [n, d] and [n]")
    return Partition(node=node, x=x, y=y)


# ---------------------------------------------------------------------------- a hospital's table

TABLE_SUFFIXES = (".csv", ".parquet", ".npz")


def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the non-empty rows of a CSV (UTF-8) or Parquet file, every cell as text."""
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"no such CSV file: {path}") from None
    except OSError as error:
        raise DatasetError(f"cannot read {path}: {error.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path} is not UTF-8 text (byte {error.start}); save it as UTF-8 CSV") from None
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        raise DatasetError(f"{path} is empty: expected a header row and at least one data row")
    header = [name.strip() for name in rows[0]]
    body = rows[1:]
    if not body:
        raise DatasetError(f"{path} has a header but no data rows")
    if len(set(header)) != len(header):
        duplicates = sorted({name for name in header if header.count(name) > 1})
        raise DatasetError(f"{path}: duplicate column names {duplicates}")
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DatasetError(f"{path}, row {line}: {len(row)} fields, the header has {len(header)}")
    return header, body


def _read_parquet(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise DatasetError(
            f"{path}: reading Parquet needs pyarrow (pip install pyarrow); or export the table as CSV"
        ) from None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path} is not a readable Parquet file: {error}") from None
    header = [str(name) for name in table.column_names]
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    body = [["" if cell is None else str(cell) for cell in row] for row in zip(*columns, strict=True)]
    if not body:
        raise DatasetError(f"{path} has no rows")
    return header, body


def _column(path: Path, header: Sequence[str], name: str, what: str) -> int:
    if name not in header:
        raise DatasetError(
            f"{path} has no {what} column {name!r}; columns are: {', '.join(header)}"
            + _did_you_mean(name, header)
        )
    return header.index(name)


def draft_preprocessing(path: Path, *, label: str) -> PreprocessingSpec:
    """A preprocessing spec whose constants are fitted on `path` (a reference table the parties agree on).

    Numeric columns: mean and standard deviation of the file's values, missing cells filled
    with the mean. String columns with at most `MAX_CATEGORIES` values: one-hot over the
    sorted values. Wider string columns and columns without values are left out. Classes:
    the label's values, in numeric order when every one is a number.
    """
    header, body = read_table(path)
    label_at = _column(path, header, label, "label")
    labelled = [row for row in body if row[label_at].strip().lower() not in MISSING_MARKERS]
    if not labelled:
        raise DatasetError(f"{path}: column {label!r} has no values")
    _, classes = _encode_labels([row[label_at].strip() for row in labelled])
    if len(classes) < 2:
        raise DatasetError(f"{path}: label column {label!r} has a single class {classes[0]!r}")
    columns: list[NumericColumn | CategoricalColumn] = []
    for at, name in enumerate(header):
        if at == label_at:
            continue
        cells = [row[at].strip() for row in labelled]
        numeric = _parse_numeric(cells)
        if numeric is not None:
            if np.isnan(numeric).all():
                continue
            mean = float(np.nanmean(numeric))
            std = float(np.nanstd(numeric))
            columns.append(NumericColumn(name=name, mean=mean, scale=std if std > 1e-12 else 1.0, fill=mean))
            continue
        categories = sorted({c for c in cells if c.lower() not in MISSING_MARKERS})
        if categories and len(categories) <= MAX_CATEGORIES:
            columns.append(CategoricalColumn(name=name, categories=tuple(categories)))
    if not columns:
        raise DatasetError(f"{path}: no usable feature columns besides {label!r}")
    return PreprocessingSpec(label=label, classes=classes, columns=tuple(columns))


def apply_preprocessing(spec: PreprocessingSpec, path: Path, *, label: str | None = None) -> Partition:
    """The node's examples: `path`'s rows prepared exactly as the job's preprocessing says.

    `label` is the column the node's operator named; it must be the spec's. Rows without a
    label are skipped; a label value the spec does not list, a missing column or a numeric
    cell that is not a number is an error naming it (the node then trains nothing).
    """
    if label is not None and label != spec.label:
        raise DatasetError(
            f"this node's label column is {label!r}, but the job's preprocessing uses {spec.label!r}"
        )
    header, body = read_table(path)
    label_at = _column(path, header, spec.label, "label")
    rows = [row for row in body if row[label_at].strip().lower() not in MISSING_MARKERS]
    if not rows:
        raise DatasetError(f"{path}: column {spec.label!r} has no values")
    class_index = {name: i for i, name in enumerate(spec.classes)}
    unknown = sorted({row[label_at].strip() for row in rows} - set(class_index))
    if unknown:
        raise DatasetError(
            f"{path}: label values {unknown} are not among the job's classes {list(spec.classes)}"
        )
    y = np.array([class_index[row[label_at].strip()] for row in rows], dtype=np.int64)
    blocks: list[npt.NDArray[np.float64]] = []
    for column in spec.columns:
        at = _column(path, header, column.name, "feature")
        cells = [row[at].strip() for row in rows]
        if isinstance(column, NumericColumn):
            values = _parse_numeric(cells)
            if values is None:
                bad = next(c for c in cells if c.lower() not in MISSING_MARKERS and not _is_number(c))
                raise DatasetError(f"{path}: column {column.name!r} is numeric in the job, but holds {bad!r}")
            values = np.where(np.isnan(values), column.fill, values)
            blocks.append(((values - column.mean) / column.scale)[:, None])
            continue
        index = {c: i for i, c in enumerate(column.categories)}
        block = np.zeros((len(cells), len(column.categories)), dtype=np.float64)
        for row_at, cell in enumerate(cells):
            hit = index.get(cell)
            if hit is not None:
                block[row_at, hit] = 1.0
        blocks.append(block)
    x = np.ascontiguousarray(np.concatenate(blocks, axis=1).astype(np.float32))
    return Partition(node=0, x=x, y=y)


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def load_examples(
    path: Path, preprocessing: PreprocessingSpec | None, *, label: str | None = None
) -> Partition:
    """A node's examples from its file: a table prepared by the job's preprocessing, or an `.npz`."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DatasetError(
            f"{path}: the node reads {', '.join(TABLE_SUFFIXES)} files, not {suffix or 'this'}"
        )
    if suffix == ".npz":
        partition = read_partition(path)
        if preprocessing is not None and partition.x.shape[1] != preprocessing.width:
            raise DatasetError(
                f"{path} holds {partition.x.shape[1]} features; "
                f"the job's preprocessing gives {preprocessing.width}"
            )
        return partition
    if preprocessing is None:
        raise DatasetError(
            f"{path} is a table, but the job's spec has no preprocessing section: the node cannot tell "
            "how to prepare it (the lab must put [preprocessing] in the job's spec)"
        )
    return apply_preprocessing(preprocessing, path, label=label)
