"""Example tables for the walkthrough: scikit-learn's breast-cancer set as hospitals' CSV files.

`python -m fl_node.example_data --out DIR --hospitals 2` writes `hospital-a.csv`,
`hospital-b.csv`, ... (disjoint shares of the patients) and `reference.csv` (patients of
no hospital: the lab drafts the job's preprocessing from it and evaluates on it). The
label column is `diagnosis` (`benign` / `malignant`); a `site` column is categorical and a
few cells are left empty, so the preprocessing encodes and imputes as well as scales. Same
arguments, same bytes.
"""

from __future__ import annotations

import argparse
import csv
import io
import string
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SITES = ("inpatient", "outpatient", "screening")


def write_example_tables(out: Path, hospitals: int = 2, *, seed: int = 0) -> list[Path]:
    """Writes the hospitals' tables and the reference table; returns their paths."""
    from sklearn.datasets import load_breast_cancer

    if not 1 <= hospitals <= 26:
        raise ValueError(f"--hospitals must be between 1 and 26, got {hospitals}")
    bunch = load_breast_cancer()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(bunch.target))
    names = [str(name) for name in bunch.feature_names]
    reference_size = len(order) // 5
    shares = np.array_split(order[reference_size:], hospitals)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"hospital-{letter}.csv" for letter in string.ascii_lowercase[:hospitals]]
    paths.append(out / "reference.csv")
    for path, share in zip(paths, [*shares, order[:reference_size]], strict=True):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["diagnosis", "site", *names])
        for row in sorted(share):
            values = [f"{v:.6g}" for v in bunch.data[row]]
            if row % 17 == 3:  # a few unmeasured values for the imputation to fill
                values[row % len(values)] = ""
            diagnosis = "malignant" if bunch.target[row] == 0 else "benign"
            writer.writerow([diagnosis, SITES[row % len(SITES)], *values])
        path.write_text(buffer.getvalue(), encoding="utf-8")
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m fl_node.example_data --out DIR [--hospitals N]`."""
    parser = argparse.ArgumentParser(
        prog="python -m fl_node.example_data", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("."), help="directory to write the tables to")
    parser.add_argument("--hospitals", type=int, default=2, help="number of hospital tables")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in write_example_tables(args.out, args.hospitals, seed=args.seed):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
