"""``python -m train.ingest``: turn a public learner-data export into canonical tables.

    python -m train.ingest --format assistments-2009 skill_builder_data.csv --out data/a09

writes ``data/a09/events.parquet`` (``events/`` parts when streamed: ``--stream``, or an
input over 512 MB or 20,000 files), ``items.parquet`` (difficulties calibrated from the
earliest half of the events, by time) and ``cleaning.json``, atomically, and prints the
cleaning report. Then ``python -m train.warmstart --events data/a09/events.parquet --items
data/a09/items.parquet`` trains on them. The job is in :mod:`train.ingest.job`.

Exit codes: 0 written; 1 bad options or bad data (one line; nothing written to ``--out``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adapters.importers import FORMATS
from train._cli import one_line_errors

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    raw_files: Annotated[
        list[Path],
        typer.Argument(help="The export's files, or folders holding them.", show_default=False),
    ],
    format_: Annotated[
        str,
        typer.Option(
            "--format", help=f"Raw format: {', '.join(FORMATS)} (README: 'Bring your own data')."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Folder for events.parquet, items.parquet and cleaning.json "
            "(new, or one an earlier ingest wrote; replaced atomically)."
        ),
    ],
    calibrate: Annotated[
        str, typer.Option(help="Item calibration from the responses: rasch or 2pl.")
    ] = "rasch",
    calibration_fraction: Annotated[
        float,
        typer.Option(
            help="Share of the events, earliest first, that calibration may use; "
            "replay should score only later events."
        ),
    ] = 0.5,
    min_responses: Annotated[
        int,
        typer.Option(
            min=1,
            help="Items with fewer responses are reported as shrunk "
            "toward their topic's difficulty.",
        ),
    ] = 20,
    skill: Annotated[
        str | None,
        typer.Option(
            help="Where topics come from: datashop the KC model (Default, ...); "
            "ednet-kt1 tags or part; edm-cup-2023 code or description; assistments "
            "skill_name or skill_id. Default: the first of each.",
            show_default=False,
        ),
    ] = None,
    item: Annotated[
        str | None,
        typer.Option(
            help="Item granularity (datashop): step (default) or problem.", show_default=False
        ),
    ] = None,
    keep_untagged: Annotated[
        bool,
        typer.Option(
            help="Keep attempts on items without a skill, under the topic "
            "'untagged' (default: dropped and counted)."
        ),
    ] = False,
    max_students: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="A quick first look: only the first N students (EdNet reads only their files).",
            show_default=False,
        ),
    ] = None,
    sample_students: Annotated[
        float | None,
        typer.Option(
            help="A quick first look: each student kept with this probability (e.g. 0.01), "
            "by a hash of the id and --seed; EdNet reads only their files.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of --sample-students.")] = 0,
    stream: Annotated[
        bool | None,
        typer.Option(
            "--stream/--in-memory",
            help="Stream into --out/events/ parts of whole students in bounded memory "
            "(ednet-kt1, assistments-2009/2012); default: stream inputs over 512 MB or "
            "20,000 files.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Processes of a streamed ingest (default 2).", show_default=False),
    ] = None,
    calibration_max_events: Annotated[
        int,
        typer.Option(
            min=1,
            help="A streamed ingest calibrates on the window's events of whole students, "
            "up to about this many.",
        ),
    ] = 2_000_000,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print cleaning.json instead of the table.")
    ] = False,
) -> None:
    """Convert a raw export into events.parquet + items.parquet + cleaning.json."""
    import json

    from rich.console import Console

    from train.ingest.job import IngestOptions, print_report, run_ingest

    console = Console()
    options = IngestOptions(
        format=format_,
        raw_files=tuple(raw_files),
        out=out,
        calibrate=calibrate,
        calibration_fraction=calibration_fraction,
        min_responses=min_responses,
        skill=skill,
        item=item,
        keep_untagged=keep_untagged,
        max_students=max_students,
        sample_students=sample_students,
        seed=seed,
        stream=stream,
        workers=workers,
        calibration_max_events=calibration_max_events,
    )
    nothing_done = (
        f"nothing was written to {out} (please report this with the --format and the file's header)"
    )
    with one_line_errors(nothing_done), console.status(f"reading {format_} ..."):
        result = run_ingest(options)
    if json_output:
        print(json.dumps(result.cleaning, indent=2, default=str))
    else:
        print_report(console, result)


if __name__ == "__main__":
    app()
