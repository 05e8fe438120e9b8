"""The files a study or sweep writes beside its MLflow run when given ``--out-dir``: each
figure as a PNG and each table as the text logged with the run (CSV or Markdown)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURE_DPI = 120


def write_report_files(
    out_dir: Path, figures: Mapping[str, Figure], texts: Mapping[str, str]
) -> list[Path]:
    """Write ``figures`` (``{file name: figure}``) and ``texts`` (``{file name: text}``) into
    ``out_dir`` (created if needed); return the files written.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     [p.name for p in write_report_files(Path(folder), {}, {"table.csv": "a,b\\n1,2\\n"})]
    ['table.csv']
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in figures.items():
        figure.savefig(out_dir / name, dpi=FIGURE_DPI)
        written.append(out_dir / name)
    for name, text in texts.items():
        (out_dir / name).write_text(text, encoding="utf-8")
        written.append(out_dir / name)
    return written
