"""Reading raw export files: one-line errors naming the format, the file and the column."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from adapters.errors import first_line as _first_line
from skbandit.exceptions import SkbanditError

TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
_SEPARATORS = {",": "comma", "\t": "tab", ";": "semicolon"}


def expand(paths: Iterable[Path], fmt: str) -> list[Path]:
    """The files to read: each path itself, or the text files under a folder (sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES and p.is_file()
            )
            if not inside:
                raise SkbanditError(
                    f"{fmt}: folder {path} holds no {'/'.join(TEXT_SUFFIXES)} files; pass "
                    "the export's files or the folder that holds them"
                )
            files += inside
        elif path.is_file():
            files.append(path)
        else:
            raise SkbanditError(f"{fmt}: {path}: no such file or folder; check the path")
    if not files:
        raise SkbanditError(f"{fmt}: no raw files given; pass the export's files")
    return files


def header(path: Path, fmt: str, sep: str = ",", strip: bool = True) -> list[str]:
    """The column names of a text table (stripped unless asked); refuses an empty file."""
    if path.stat().st_size == 0:
        raise SkbanditError(f"{fmt}: {path} is empty (expected a header row and data rows)")
    try:
        columns = pd.read_csv(path, sep=sep, nrows=0, encoding="latin-1").columns
    except pd.errors.EmptyDataError:
        raise SkbanditError(
            f"{fmt}: {path} is empty (expected a header row and data rows)"
        ) from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise SkbanditError(f"{fmt}: {path}: unreadable header ({_first_line(exc)})") from None
    return [str(c).strip() if strip else str(c) for c in columns]


def read_table(
    path: Path,
    fmt: str,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    *,
    extra: Callable[[str], bool] | None = None,
    sep: str = ",",
    text_columns: tuple[str, ...] = (),
    layout: str = "",
) -> pd.DataFrame:
    """Read the columns a format needs from one delimited text file.

    Parameters
    ----------
    path : Path
    fmt : str
        Format name for error messages.
    required, optional : tuple of str
        Columns that must be present, and columns read when present.
    extra : callable, optional
        Also read every column for which ``extra(name)`` is true (e.g. DataShop's ``KC(...)``).
    sep : str
        Field separator.
    text_columns : tuple of str
        Columns read as text (ids keep leading zeros; numbers are cleaned later).
    layout : str
        Words for the error message ("the skill-builder layout").

    Raises
    ------
    SkbanditError
        Empty file, missing column (naming the columns found, and the separator when the
        header looks split by another one), unparseable rows.
    """
    raw_names, use = checked_columns(path, fmt, required, optional, layout, extra=extra, sep=sep)
    frame = _read(path, fmt, sep, use, text_columns, raw_names)
    if frame.empty:
        raise SkbanditError(f"{fmt}: {path} has a header but no data rows; pass a full export")
    return frame


def checked_columns(
    path: Path,
    fmt: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    layout: str,
    *,
    extra: Callable[[str], bool] | None = None,
    sep: str = ",",
) -> tuple[list[str], list[str]]:
    """The file's column names as written, and the (stripped) ones to read; a one-line
    error naming the columns found when a required one is missing."""
    raw_names = header(path, fmt, sep, strip=False)
    columns = [name.strip() for name in raw_names]
    missing = [c for c in required if c not in columns]
    if missing:
        raise SkbanditError(
            f"{fmt}: {path} is missing column '{missing[0]}' (expected {layout or 'columns'}: "
            f"{', '.join(required)}); found columns: {_shown(columns)}"
            f"{_separator_hint(columns, sep)}; check --format and the file"
        )
    wanted = set(required) | set(optional)
    return raw_names, [c for c in columns if c in wanted or (extra is not None and extra(c))]


def _read(
    path: Path | bytes,
    fmt: str,
    sep: str,
    use: list[str],
    text_columns,
    raw_names: list[str],
    where: str | None = None,
) -> pd.DataFrame:
    """Read ``use`` (stripped names) with one parser, pandas' C parser, whatever the size.

    The same file always gives the same types (the pyarrow parser, once used above 1 MB,
    typed columns differently and refused a blank integer); ``text_columns`` (``"*"`` for
    all) are read as text, whose blanks and DataShop's ``.`` :func:`numbers` handles.
    """
    names = [n for n in raw_names if n.strip() in use]
    every = "*" in text_columns
    dtype = {n: str for n in names if every or n.strip() in text_columns}
    for encoding in ("utf-8", "latin-1"):  # ASSISTments exports are Latin-1
        try:
            source = io.BytesIO(path) if isinstance(path, bytes) else path
            frame = pd.read_csv(
                source, sep=sep, usecols=names, dtype=dtype or None, encoding=encoding, engine="c"
            )
            break
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, ValueError) as exc:
            raise SkbanditError(
                f"{fmt}: {where or _named(path)} could not be parsed ({_first_line(exc)}); "
                f"check that it is a {_SEPARATORS.get(sep, repr(sep))}-separated export"
            ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_buffer(
    data: bytes,
    where: str,
    fmt: str,
    columns: list[str],
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    *,
    text_columns: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Several files of one header, joined as ``data`` (one header line first), parsed as
    :func:`read_table` parses each file: the same parser, columns and types."""
    wanted = set(required) | set(optional)
    use = [c.strip() for c in columns if c.strip() in wanted]
    return _read(data, fmt, ",", use, text_columns, columns, where)


def read_tables(
    files: list[Path],
    fmt: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    *,
    text_columns: tuple[str, ...],
    layout: str,
) -> pd.DataFrame:
    """:func:`read_table` of every file, concatenated (several files of one layout)."""
    return concatenated(
        [
            read_table(path, fmt, required, optional, text_columns=text_columns, layout=layout)
            for path in files
        ]
    )


def concatenated(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The files' tables as one (a single file's unchanged)."""
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def described(files: list[Path]) -> str:
    """How messages name the input: the file, or how many files."""
    return str(files[0]) if len(files) == 1 else f"{len(files)} files"


def numbers(values: pd.Series, fmt: str, path, column: str, blank=(".",)) -> np.ndarray:
    """A column as float64; blanks (and DataShop's ``.``) are NaN, other text is an error.

    Text columns are object (pandas 2) or ``str`` (pandas 3): both have their blanks removed.
    """
    raw = values.where(~values.isin(blank)) if is_text(values) else values
    out = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = raw.notna().to_numpy() & np.isnan(out)
    if bad.any():
        examples = ", ".join(repr(v) for v in pd.unique(raw[bad])[:3])
        raise SkbanditError(
            f"{fmt}: {path}: column '{column}' must be a number; found {examples} "
            f"({int(bad.sum())} rows); check --format and the file"
        )
    return out


def refuse_empty(frame: pd.DataFrame, fmt: str, where: str, report) -> None:
    """A one-line error when the import's rules dropped every row (naming each count)."""
    if len(frame):
        return
    counts = "; ".join(report.lines()) or "no rows"
    raise SkbanditError(
        f"{fmt}: {where}: every row was dropped ({counts}); nothing is left to learn from; "
        "check --format and the file"
    )


def is_text(values: pd.Series) -> bool:
    """True for a text column, whether object (pandas 2) or ``str``/string (pandas 3).

    >>> is_text(pd.Series(["a"], dtype=object)), is_text(pd.Series([1.0]))
    (True, False)
    """
    return values.dtype == object or pd.api.types.is_string_dtype(values.dtype)


def times(values: pd.Series, fmt: str, path, column: str, unit: str | None = None) -> pd.Series:
    """A column as UTC timestamps: epoch numbers in ``unit`` (``s``/``ms``), else date text.

    Times without a zone are taken as UTC. Unreadable values are an error naming the column.
    """
    if unit is not None:
        seconds = numbers(values, fmt, path, column)
        return pd.Series(pd.to_datetime(seconds, unit=unit, utc=True), index=values.index)
    try:
        parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    except (TypeError, ValueError):
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    bad = values.notna().to_numpy() & parsed.isna().to_numpy()
    if bad.any():
        examples = ", ".join(repr(v) for v in pd.unique(values[bad])[:3])
        raise SkbanditError(
            f"{fmt}: {path}: column '{column}' must be a date and time "
            f"(e.g. 2012-09-26 10:29:40); found {examples} ({int(bad.sum())} rows)"
        )
    return parsed.astype("datetime64[ns, UTC]")


def _separator_hint(columns: list[str], sep: str) -> str:
    if len(columns) != 1:
        return ""
    for other, name in _SEPARATORS.items():
        if other != sep and other in columns[0]:
            return (
                f" (a single column: the file looks {name}-separated, the format "
                f"expects {_SEPARATORS.get(sep, repr(sep))}-separated)"
            )
    return ""


def _shown(columns: list[str], limit: int = 12) -> str:
    text = ", ".join(columns[:limit])
    return text + (f", ... ({len(columns)} columns)" if len(columns) > limit else "")


def _named(path) -> str:
    """A path for a message; a buffer of joined files has no name of its own."""
    return "the joined files" if isinstance(path, bytes) else str(path)
