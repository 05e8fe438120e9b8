"""EDM Cup 2023 (ASSISTments): ``action_logs.csv`` joined to the assignment and problem details.

Source: the EDM Cup 2023 competition data, https://www.kaggle.com/competitions/edm-cup-2023
(ASSISTments, 2023):
``action_logs.csv`` (``assignment_log_id, timestamp, problem_id, ..., action``; the
timestamp in Unix seconds; actions ``assignment_started``, ``problem_started``,
``correct_response``, ``wrong_response``, ``open_response``, ``hint_requested``,
``answer_requested``, ``explanation_requested``, ``skill_related_video_requested``,
``live_tutor_requested``, ``problem_finished``, ...), ``assignment_details.csv``
(``assignment_log_id, teacher_id, class_id, student_id, sequence_id, ...``) and
``problem_details.csv`` (``problem_id, ..., problem_type, problem_skill_code,
problem_skill_description, ...``). The column lists and action values were checked against
public code that reads the release (the competition's data page lists the files; the
action values are not documented there).

What we do with it:

- one attempt per (``assignment_log_id``, ``problem_id``): the student is the assignment's
  ``student_id``, the topic its ``problem_skill_code`` (a Common Core code like 7.RP.A.1);
  the timestamp is ``problem_started`` (when the problem was given), the latency the time
  to the first graded response or help request;
- ``correct`` is the first graded response (``correct_response`` 1, ``wrong_response`` 0);
  the ASSISTments tutoring rule applies: when a hint, the answer or an explanation was asked
  for before any response, the attempt is wrong (counted); ``help_requested`` is any such
  request on the problem;
- problems started but never graded (open response, abandoned) and actions of assignments
  missing from ``assignment_details.csv`` are dropped (counted);
- ``assignment_log_id`` is the action sequence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from adapters.importers import ImportOptions, RawImport
from adapters.importers._read import expand, header, numbers, read_table
from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.import_rules import ImportReport, drop_rows, first_rows

FORMAT = "edm-cup-2023"
TABLES = {
    "action_logs": ("assignment_log_id", "timestamp", "problem_id", "action"),
    "assignment_details": ("assignment_log_id", "student_id"),
    "problem_details": ("problem_id", "problem_skill_code"),
}
GRADED = {"correct_response": 1.0, "wrong_response": 0.0}
HELP = (
    "hint_requested",
    "answer_requested",
    "explanation_requested",
    "skill_related_video_requested",
    "live_tutor_requested",
)
TEXT = (
    "assignment_log_id",
    "problem_id",
    "action",
    "student_id",
    "problem_skill_code",
    "problem_skill_description",
)
OPTIONAL = {"problem_details": ("problem_skill_description",)}


def load(paths: list[Path], options: ImportOptions | None = None) -> RawImport:
    """Read the three tables (given as files or a folder holding them, any order).

    ``options.skill``: ``code`` (default; ``problem_skill_code``) or ``description``
    (``problem_skill_description``).
    """
    column = (
        "problem_skill_description"
        if options is not None and options.skill == "description"
        else "problem_skill_code"
    )
    files = {name: [p for p in expand(paths, FORMAT) if _kind(p) == name] for name in TABLES}
    missing = [name for name, found in files.items() if not found]
    if missing:
        raise SkbanditError(
            f"{FORMAT}: no {', '.join(m + '.csv' for m in missing)} among the files (expected "
            "action_logs.csv, assignment_details.csv and problem_details.csv, recognised by "
            "their columns); pass all three"
        )
    report = ImportReport(FORMAT, sources=[str(p) for ps in files.values() for p in ps])
    tables = {
        name: pd.concat(
            [
                read_table(
                    p,
                    FORMAT,
                    TABLES[name],
                    OPTIONAL.get(name, ()),
                    text_columns=TEXT,
                    layout=f"the {name}.csv layout",
                )
                for p in ps
            ],
            ignore_index=True,
        )
        for name, ps in files.items()
    }
    actions = tables["action_logs"]
    report.rows_read = len(actions)
    where = str(files["action_logs"][0])
    attempts = _attempts(actions, where, report)
    if column not in tables["problem_details"]:
        raise SkbanditError(
            f"{FORMAT}: problem_details.csv has no '{column}' column "
            "(--skill description); pass --skill code"
        )
    report.notes.append(f"skills from problem_details.csv '{column}'")
    return RawImport(_join(attempts, tables, report, column), report)


def _kind(path: Path) -> str | None:
    columns = set(header(path, FORMAT))
    if "action" in columns:
        return "action_logs"
    if "student_id" in columns:
        return "assignment_details"
    return "problem_details" if "problem_skill_code" in columns else None


def _attempts(actions: pd.DataFrame, where: str, report: ImportReport) -> pd.DataFrame:
    """One row per (assignment, problem): start time, first outcome, help, correctness."""
    action = actions["action"].fillna("").str.strip()
    actions = actions.assign(
        _t=numbers(actions["timestamp"], FORMAT, where, "timestamp"),
        _row=np.arange(len(actions)),
        action=action,
    )
    key = ["assignment_log_id", "problem_id"]
    started = actions[action == "problem_started"].groupby(key)["_t"].min().rename("started")
    helped = actions[action.isin(HELP)].groupby(key).size().rename("helps")
    outcomes = actions[action.isin([*GRADED, *HELP])]
    first = first_rows(outcomes, key, ["_t", "_row"], ImportReport(FORMAT), "later")
    attempts = first.set_index(key)[["action", "_t"]].join(started, how="outer")
    attempts = attempts.join(helped, how="left").reset_index()
    attempts = drop_rows(
        attempts,
        attempts["action"].isna().to_numpy(),
        report,
        "problems dropped: started, never graded",
    )
    help_first = attempts["action"].isin(HELP).to_numpy()
    report.count("attempts marked wrong: help before any answer", help_first.sum())
    attempts["correct"] = attempts["action"].map(GRADED).fillna(0.0).to_numpy()
    attempts["help"] = (attempts["helps"].fillna(0) > 0).astype(float)
    given = attempts["started"].fillna(attempts["_t"])
    attempts["latency_ms"] = (attempts["_t"] - given) * 1000.0
    attempts["given"] = given
    return attempts


def _join(
    attempts: pd.DataFrame, tables: dict, report: ImportReport, column: str = "problem_skill_code"
) -> pd.DataFrame:
    students = tables["assignment_details"].drop_duplicates("assignment_log_id")
    students = students.set_index("assignment_log_id")["student_id"]
    skills = tables["problem_details"].drop_duplicates("problem_id")
    skills = skills.set_index("problem_id")[column]
    student = attempts["assignment_log_id"].map(students)
    attempts = drop_rows(
        attempts.assign(student=student),
        student.isna().to_numpy(),
        report,
        "attempts dropped: assignment not in assignment_details",
    )
    skill = attempts["problem_id"].map(skills)
    return pd.DataFrame(
        {
            schema.USER_ID: attempts["student"].to_numpy(),
            schema.ITEM_ID: attempts["problem_id"].to_numpy(),
            schema.SKILL_IDS: skill.map(
                lambda s: [s] if isinstance(s, str) and s else []
            ).to_numpy(),
            schema.TIMESTAMP: pd.to_datetime(attempts["given"].to_numpy(), unit="s", utc=True),
            schema.CORRECT: attempts["correct"].to_numpy(dtype=np.int64),
            schema.LATENCY_MS: attempts["latency_ms"].to_numpy(),
            schema.HELP_REQUESTED: attempts["help"].to_numpy(),
            schema.ACTION_SEQUENCE_ID: attempts["assignment_log_id"].to_numpy(),
        }
    )
