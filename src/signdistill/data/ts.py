"""The UEA/UCR time series archive's ``.ts`` files: one file per fixed split.

``root/<name>_TRAIN.ts`` and ``root/<name>_TEST.ts`` (or ``root/<name>/<name>_TRAIN.ts``, as the
archive's zip files unpack), each a header and one case per line::

    # comments
    @problemName BasicMotions
    @timeStamps false
    @missing false
    @univariate false
    @dimensions 6
    @equalLength true
    @seriesLength 100
    @classLabel true Standing Running Walking Badminton
    @data
    -0.74,-0.74,10.2:0.52,-0.19,-0.25:...:Standing

Dimensions are separated by ``:``, values by ``,``, the class label comes last; cases may differ in
length (``data.source.length`` and ``resize`` bring them to one), and ``?`` marks a missing value.

Missing values: an error by default, naming the file and line, because a silently filled gap
changes the data. With ``missing='interpolate'`` each gap is filled linearly between its known
neighbours over time, and a gap at either end takes the nearest known value; a dimension with no
known value at all is still an error. ``NaN`` written out is treated like ``?``; infinity never is.

The parser is written here (about a hundred lines) rather than taken from aeon's
``load_from_ts_file``: aeon would add numba and llvmlite (~230 MB, and it pins older numpy and
pandas than this project's), lower-cases every class label, reports problems without the file or
line, and has no gap policy, so it would need wrapping in as much code as the parser itself.
The recordings come with their partition (``train``/``test``), for ``data.split=predefined``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, get_args

import numpy as np

from signdistill.data.cache import cached
from signdistill.data.io import RESIZE_MODES, Resize, check_same_classes, listing, resize
from signdistill.data.recordings import Recordings
from signdistill.errors import DataError

Missing = Literal["error", "interpolate"]
MISSING_POLICIES: tuple[str, ...] = get_args(Missing)
SPLIT_FILES = {"train": "TRAIN", "test": "TEST"}
_BOOLEAN_TAGS = ("@timestamps", "@missing", "@univariate", "@equallength", "@targetlabel")


@dataclass(frozen=True)
class TsCase:
    """One case of a ``.ts`` file: its (dimensions, time) values, class label and line number."""

    values: np.ndarray
    label: str
    line: int


@dataclass(frozen=True)
class TsFile:
    """A parsed ``.ts`` file: its declared classes (in header order) and its cases."""

    path: Path
    classes: list[str]
    n_dims: int
    cases: list[TsCase]


@dataclass(frozen=True)
class TsDataset:
    """The ``<name>_TRAIN.ts`` and ``<name>_TEST.ts`` files under ``root``, with their split.

    ``length``: every case is brought to this many steps by ``resize``; None keeps the series'
    own length when all cases share it (and refuses variable lengths). ``missing``: what a ``?``
    does (see the module docstring).
    """

    root: str
    name: str
    length: int | None = None
    resize: Resize = "resample"
    missing: Missing = "error"

    partitioned: ClassVar[bool] = True  # its recordings come in the archive's train/test split
    has_subjects: ClassVar[bool] = False  # a case's group is its file and line

    def __post_init__(self) -> None:
        """Refuse a bad configuration before any file is parsed (checking that the files exist)."""
        if self.length is not None and self.length < 1:
            raise DataError(f"data.source.length={self.length}: must be at least 1, or null")
        if self.resize not in RESIZE_MODES:
            raise DataError(f"data.source.resize={self.resize!r}: expected one of {RESIZE_MODES}")
        if self.missing not in MISSING_POLICIES:
            raise DataError(
                f"data.source.missing={self.missing!r}: expected one of {MISSING_POLICIES}"
            )
        if not self.name or "/" in self.name or "\\" in self.name:
            raise DataError(
                f"data.source.name={self.name!r}: expected a problem name such as BasicMotions"
            )
        if not Path(self.root).expanduser().is_dir():
            raise DataError(f"data.source.root={self.root!r}: no such data folder")
        self.files()

    def files(self) -> dict[str, Path]:
        """{partition: file}: ``root/<name>_<SPLIT>.ts``, else ``root/<name>/<name>_<SPLIT>.ts``."""
        root = Path(self.root).expanduser().resolve()
        for folder in (root, root / self.name):
            found = {p: folder / f"{self.name}_{s}.ts" for p, s in SPLIT_FILES.items()}
            if all(path.is_file() for path in found.values()):
                return found
        raise DataError(
            f"data.source.name={self.name!r}: no {self.name}_TRAIN.ts and {self.name}_TEST.ts in "
            f"{root} or {root / self.name}"
        )

    def load(self, cache_dir: str | Path) -> Recordings:
        """Parse both files once; later loads with the same files and settings hit the cache."""
        files = self.files()
        key = {
            "name": self.name,
            "length": self.length,
            "resize": self.resize,
            "missing": self.missing,
            "files": listing(list(files.values())),
        }
        return cached(cache_dir, "ts", key, lambda: self._build(files))

    def _build(self, files: dict[str, Path]) -> Recordings:
        parsed = {part: read_ts(path, self.missing) for part, path in files.items()}
        train, test = parsed["train"], parsed["test"]
        if test.n_dims != train.n_dims:
            raise DataError(
                f"{test.path}: {test.n_dims} dimension(s), {train.path} has {train.n_dims}"
            )
        for ts in (train, test):
            found = {case.label for case in ts.cases}
            check_same_classes(ts.path, found, train.classes, f"{train.path}'s @classLabel line")
        length = self.length or _common_length(list(parsed.values()))
        cases = [(part, ts.path, case) for part, ts in parsed.items() for case in ts.cases]
        return Recordings(
            x=np.stack(
                [resize(c.values, length, self.resize, f"{p}, line {c.line}") for _, p, c in cases]
            ).astype(np.float32),
            y=np.array([train.classes.index(c.label) for _, _, c in cases], dtype=np.int64),
            classes=train.classes,
            channels=[f"dim_{d}" for d in range(train.n_dims)],
            groups=np.array([f"{p.name}:{c.line}" for _, p, c in cases]),
            partition=np.array([part for part, _, _ in cases]),
        )


def _common_length(files: list[TsFile]) -> int:
    """The one series length of every case; variable lengths need ``data.source.length``."""
    lengths: dict[int, tuple[Path, int]] = {}  # each length -> where it first occurs
    for ts in files:
        for case in ts.cases:
            lengths.setdefault(case.values.shape[1], (ts.path, case.line))
    if len(lengths) > 1:
        shortest, longest = min(lengths), max(lengths)
        path, line = lengths[shortest]
        raise DataError(
            f"{path}, line {line}: series lengths vary ({shortest} to {longest} steps); set "
            "data.source.length (and data.source.resize) to bring them to one length"
        )
    return next(iter(lengths))


def read_ts(path: Path, missing: str = "error") -> TsFile:
    """Parse a ``.ts`` classification file; any problem raises DataError naming file and line."""
    header: dict[str, tuple[str, int]] = {}
    meta: _Header | None = None
    cases: list[TsCase] = []
    try:
        with path.open(encoding="utf-8") as f:
            for number, raw in enumerate(f, start=1):
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                where = f"{path}, line {number}"
                if meta is not None:
                    cases.append(meta.case(line, number, where, missing))
                elif line.lower() == "@data":
                    meta = _Header.parse(header, path, where)
                elif line.startswith("@"):
                    tag, *value = line.split(maxsplit=1)
                    header[tag.lower()] = (value[0] if value else "", number)
                else:
                    raise DataError(
                        f"{where}: expected a @tag header line or @data, got {line[:40]!r}"
                    )
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable .ts file ({e})") from e
    if meta is None:
        raise DataError(f"{path}: no @data line (not a .ts file?)")
    if not cases:
        raise DataError(f"{path}: no cases after @data")
    return TsFile(path, meta.classes, cases[0].values.shape[0], cases)


@dataclass
class _Header:
    """What the header says about every case, and the parser of one case line."""

    classes: list[str]
    n_dims: int | None  # None: not declared, taken from the first case
    series_length: int | None  # declared with @equalLength true

    @classmethod
    def parse(cls, header: dict[str, tuple[str, int]], path: Path, where: str) -> _Header:
        flags = {tag: _boolean(header, tag, path) for tag in _BOOLEAN_TAGS if tag in header}
        if flags.get("@timestamps"):
            raise DataError(f"{path}: timestamped series (@timeStamps true) are not supported")
        if flags.get("@targetlabel"):
            raise DataError(f"{path}: a regression problem (@targetLabel true), not classification")
        if "@classlabel" not in header:
            raise DataError(f"{where}: @data before a @classLabel true <labels> line")
        value, number = header["@classlabel"]
        flag, *classes = value.split()
        if flag.lower() != "true" or not classes:
            raise DataError(
                f"{path}, line {number}: expected '@classLabel true <label> <label> ...' (a "
                "classifier needs labelled cases)"
            )
        if len(set(classes)) != len(classes) or len(classes) < 2:
            raise DataError(
                f"{path}, line {number}: @classLabel declares {classes}; a classifier needs at "
                "least 2 distinct classes"
            )
        n_dims = _integer(header, "@dimensions", path) or _integer(header, "@dimension", path)
        if flags.get("@univariate") and n_dims not in (None, 1):
            raise DataError(f"{path}: @univariate true but @dimensions {n_dims}")
        equal = flags.get("@equallength", False)
        return cls(
            classes=classes,
            n_dims=1 if flags.get("@univariate") and n_dims is None else n_dims,
            series_length=_integer(header, "@serieslength", path) if equal else None,
        )

    def case(self, line: str, number: int, where: str, missing: str) -> TsCase:
        """One data line -> its (dimensions, time) float64 values and label."""
        *dims, label = (field.strip() for field in line.split(":"))
        if not dims:
            raise DataError(f"{where}: no ':' before a class label (expected values:...:label)")
        if self.n_dims is None:
            self.n_dims = len(dims)
        if len(dims) != self.n_dims:
            raise DataError(
                f"{where}: {len(dims)} dimension(s) before the class label, expected "
                f"{self.n_dims} (dimensions are separated by ':', the label comes last)"
            )
        if label not in self.classes:
            raise DataError(
                f"{where}: class label {label!r} is not one of @classLabel's {self.classes}"
            )
        rows = [_values(text, d, where, missing) for d, text in enumerate(dims)]
        lengths = {len(row) for row in rows}
        if len(lengths) > 1:
            raise DataError(
                f"{where}: the dimensions have {[len(row) for row in rows]} values; a case's "
                "dimensions must have the same length"
            )
        if self.series_length is not None and len(rows[0]) != self.series_length:
            raise DataError(
                f"{where}: {len(rows[0])} values, but the header says @equalLength true "
                f"@seriesLength {self.series_length}"
            )
        return TsCase(np.stack(rows), label, number)


def _values(text: str, dim: int, where: str, missing: str) -> np.ndarray:
    """One dimension's comma-separated values; '?' (or NaN) is missing, handled per ``missing``."""
    if "(" in text:
        raise DataError(f"{where}: timestamped values '(t,v)' are not supported")
    try:
        values = np.array(text.replace("?", "nan").split(","), dtype=np.float64)
    except ValueError as e:
        raise DataError(f"{where}: dimension {dim}: not a number ({e})") from e
    if np.isinf(values).any():
        raise DataError(
            f"{where}: dimension {dim}: infinite value at step {_first(np.isinf(values))}"
        )
    gaps = np.isnan(values)
    if not gaps.any():
        return values
    if missing == "error":
        raise DataError(
            f"{where}: dimension {dim}: missing value ('?') at step {_first(gaps)}; set "
            "data.source.missing=interpolate to fill gaps linearly"
        )
    if gaps.all():
        raise DataError(f"{where}: dimension {dim}: every value is missing, nothing to interpolate")
    steps = np.arange(len(values))
    values[gaps] = np.interp(steps[gaps], steps[~gaps], values[~gaps])
    return values


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _boolean(header: dict[str, tuple[str, int]], tag: str, path: Path) -> bool:
    value, number = header[tag]
    if value.lower() not in ("true", "false"):
        raise DataError(f"{path}, line {number}: {tag} {value!r}: expected true or false")
    return value.lower() == "true"


def _integer(header: dict[str, tuple[str, int]], tag: str, path: Path) -> int | None:
    if tag not in header:
        return None
    value, number = header[tag]
    if not value.isdigit() or int(value) < 1:
        raise DataError(f"{path}, line {number}: {tag} {value!r}: expected a positive integer")
    return int(value)
