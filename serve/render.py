"""How the CLI shows things: rich tables for people, plain dicts for ``--json``.

Every table fits an 80-column terminal: long texts (the reasons) are printed under the
table, one wrapped line per item, and ``models`` keeps its widest columns for ``--wide``.
"""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from skbandit import schema
from skbandit.explanations import success_range
from skbandit.uncertainty import COVERAGE

RULE_WIDTH = 60
ATTEMPT_COLUMNS = (
    schema.TIMESTAMP,
    schema.ITEM_ID,
    schema.CORRECT,
    schema.LATENCY_MS,
    schema.HELP_REQUESTED,
)


def _console() -> Console:
    return Console(highlight=False)


def _percent(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.0%}"


def _model_footer(info: dict) -> str:
    """``Bandit: N updates | Alpha: a | Model: LinUCB | NAME vV (alias)``, as in the seed."""
    alias = f" ({info['alias']})" if info["alias"] else ""
    return (
        f"Bandit: {info['updates']:,} updates | Alpha: {_number(info['alpha'])} | "
        f"Model: LinUCB | {info['name']} v{info['version']}{alias}"
    )


def _number(value: float) -> str:
    """A float that always looks like one: 1.0, 0.25, 1e-05."""
    text = f"{value:g}"
    return text if any(c in text for c in ".en") else f"{text}.0"


def _print_settings(console: Console, settings) -> None:
    line = settings.describe() if settings is not None else None
    if line:
        console.print(line)


def _records(frame: pd.DataFrame) -> list[dict]:
    """DataFrame rows as JSON-ready dicts (timestamps as ISO strings, NaN as None)."""
    out = frame.astype(object).where(frame.notna(), None)
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            out[column] = frame[column].map(lambda t: t.isoformat())
    return out.to_dict("records")


def _print_student_notes(console: Console, week) -> None:
    """Say when the student is unknown (and which known ids look like it)."""
    if week.known_student:
        return
    console.print(
        f"[yellow]note: no attempts by {week.user_id} yet, so the context is the cold-start "
        "default and the ranking is generic until they have attempts[/yellow]"
    )
    similar = getattr(week, "similar_ids", ())
    if similar:
        console.print(f"[yellow]did you mean: {', '.join(similar)}?[/yellow]")


def _expected(row: dict) -> str:
    """``70% (58–80%)``: the expected success and its 80 % interval (just ``70%`` without one)."""
    low, high = row.get(schema.SUCCESS_LOW), row.get(schema.SUCCESS_HIGH)
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return _percent(row[schema.EXPECTED_REWARD])
    return f"{_percent(row[schema.EXPECTED_REWARD])} ({success_range(low, high)})"


def _bonus(row: dict) -> str:
    return f"+{row[schema.UCB_BONUS]:.0%}"


INTERVAL_NOTE = (
    f"Expected: the chance of success, with the range the true chance lies in "
    f"{COVERAGE:.0%} of the time (from the uncertainty of their level, of the item and of "
    "the model). UCB bonus: what the ranking adds to explore; not an uncertainty."
)
COMPARISON_INTERVAL_NOTE = (
    f"LinUCB est.: with the range the true chance lies in {COVERAGE:.0%} of the time (from "
    "the uncertainty of their level, of the item and of the model)."
)


def _difficulty(row: dict) -> str:
    value = row.get(schema.DIFFICULTY)
    return "" if value is None or pd.isna(value) else f"{value:+.2f}"


def _print_reasons(console: Console, recs: pd.DataFrame) -> None:
    """``Why:`` then one wrapped line per item, aligned after its rank."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column()
    for row in recs.to_dict("records"):
        grid.add_row(f"{row[schema.RANK]}.", row[schema.REASON])
    console.print("Why:")
    console.print(grid)


def trace_payload(week, recs: pd.DataFrame, info: dict | None, settings=None) -> dict:
    """Everything ``trace`` prints, as a dict for ``--json``."""
    columns = [c for c in ATTEMPT_COLUMNS if c in week.attempts.columns]
    return {
        "student_id": week.user_id,
        "known_student": week.known_student,
        "topic": week.topic,
        "time_window": {
            "label": week.window.label,
            "start": week.window.start.isoformat(),
            "end": week.window.end.isoformat(),
        },
        "attempts": _records(week.attempts[columns]),
        "context": {
            key: (float(v) if isinstance(v, float) else v) for key, v in week.context.items()
        },
        "policy": "linucb" if info else "rule_based",
        "policy_settings": settings.as_dict() if settings is not None else None,
        "recommendations": _records(recs),
        "model": info,
    }


def print_trace(week, recs: pd.DataFrame, info: dict | None, settings=None) -> None:
    """The attempts in the window, the student's context, then the recommendations."""
    console = _console()
    console.print(f"Student {week.user_id} | topic {week.topic} | window {week.window.label}")
    _print_student_notes(console, week)
    _print_attempts(console, week.attempts)
    _print_context(console, week.context)
    if info is None:
        _print_rule_list(console, recs)
    else:
        _print_rl_table(console, recs, info, settings)


def _print_attempts(console: Console, attempts: pd.DataFrame) -> None:
    if attempts.empty:
        console.print("No attempts on this topic in the window.")
        return
    table = Table(title=f"Attempts in the window ({len(attempts)})")
    for column in ("Time (UTC)", "Item", "Correct", "Latency (s)", "Help"):
        table.add_column(column)
    for row in attempts.to_dict("records"):
        latency = row.get(schema.LATENCY_MS)
        help_requested = row.get(schema.HELP_REQUESTED)
        table.add_row(
            row[schema.TIMESTAMP].strftime("%Y-%m-%d %H:%M"),
            str(row[schema.ITEM_ID]),
            "yes" if row[schema.CORRECT] else "no",
            "n/a" if latency is None or pd.isna(latency) else f"{latency / 1000:.0f}",
            "n/a"
            if help_requested is None or pd.isna(help_requested)
            else ("yes" if help_requested else "no"),
        )
    console.print(table)


def _print_context(console: Console, context: dict) -> None:
    title = "Context at the end of the window"
    table = Table(title=title, show_header=False, min_width=len(title) + 4)
    if "ability" in context:
        table.add_row(
            "their level (ability)",
            f"{context['ability']:+.2f} ± {context['ability_sd']:.2f} logits",
        )
    for key in schema.STUDENT_CONTEXT:
        table.add_row(key, f"{context[key]:.2f}")
    if "accuracy" in context:
        table.add_row("raw accuracy", f"{context['accuracy']:.2f}")
    table.add_row("earlier events", str(context.get(schema.N_PRIOR, "")))
    console.print(table)


def _print_rule_list(console: Console, recs: pd.DataFrame) -> None:
    console.print(
        Rule("Rule-based Recommendations (topic filter, sort by difficulty)", characters="━")
    )
    table = Table()
    for column in ("Rank", "Item", "Difficulty", "IRT expected"):
        table.add_column(column)
    for row in recs.to_dict("records"):
        table.add_row(
            str(row[schema.RANK]),
            str(row[schema.ITEM_ID]),
            _difficulty(row),
            _percent(row[schema.EXPECTED_REWARD]),
        )
    console.print(table)
    _print_reasons(console, recs)


RL_COLUMNS = ("Rank", "Item", "Difficulty", "Expected", "UCB bonus", "Mode")


def _print_rl_table(console: Console, recs: pd.DataFrame, info: dict, settings) -> None:
    console.print(Rule("RL-Powered Recommendations (LinUCB Bandit)", characters="━"))
    table = Table()
    for column in RL_COLUMNS:
        table.add_column(column)
    for row in recs.to_dict("records"):
        table.add_row(
            str(row[schema.RANK]),
            str(row[schema.ITEM_ID]),
            _difficulty(row),
            _expected(row),
            _bonus(row),
            "Explore" if row[schema.IS_EXPLORATION] else "Exploit",
        )
    console.print(table)
    console.print(INTERVAL_NOTE)
    _print_reasons(console, recs)
    _print_settings(console, settings)
    console.print(_model_footer(info))
    console.print(Rule(characters="━"))


COMPARISON_COLUMNS = (
    "#",
    "Rule pick",
    "Diff.",
    "IRT est.",
    "LinUCB pick",
    "Diff.",
    "LinUCB est. (80% range)",
    "Mode",
)
ESTIMATES_NOTE = (
    "IRT est.: success chance from their level (ability) and the item's IRT parameters "
    "alone (3PL: "
    "with its guessing floor where it has one). LinUCB est.: the "
    "bandit's learned estimate, which also weighs recent accuracy, speed, help use and "
    "how others did on the item, so the same item can get two different numbers."
)


def compare_payload(week, rule, rl, compared: dict, info: dict, settings=None) -> dict:
    """Everything ``compare-recs`` prints, as a dict for ``--json``."""
    return {
        "student_id": week.user_id,
        "known_student": week.known_student,
        "topic": week.topic,
        "time_window": week.window.label,
        "rule_based": _records(rule),
        "linucb": _records(rl),
        **compared,
        "policy_settings": settings.as_dict() if settings is not None else None,
        "model": info,
    }


def print_comparison(week, rule, rl, compared: dict, info: dict, settings=None) -> None:
    """Both lists in one table, the overlap, and why the bandit picked what the rule did not."""
    console = _console()
    _print_student_notes(console, week)
    table = Table(
        title=f"Rule-based vs LinUCB: {week.user_id} on {week.topic} ({week.window.label})"
    )
    for column in COMPARISON_COLUMNS:
        table.add_column(column)
    for rank in range(max(len(rule), len(rl))):
        left = rule.iloc[rank].to_dict() if rank < len(rule) else None
        right = rl.iloc[rank].to_dict() if rank < len(rl) else None
        table.add_row(
            str(rank + 1),
            *(
                ("",) * 3
                if left is None
                else (
                    str(left[schema.ITEM_ID]),
                    _difficulty(left),
                    _percent(left[schema.EXPECTED_REWARD]),
                )
            ),
            *(
                ("",) * 4
                if right is None
                else (
                    str(right[schema.ITEM_ID]),
                    _difficulty(right),
                    _expected(right),
                    "Explore" if right[schema.IS_EXPLORATION] else "Exploit",
                )
            ),
        )
    console.print(table)
    console.print(ESTIMATES_NOTE)
    console.print(COMPARISON_INTERVAL_NOTE)
    console.print(f"Overlap: {compared['n_overlap']} of {len(rl)} items")
    for why in compared["rl_only"]:
        console.print(
            f"  {why['item_id']}: {why['why']} (expected {why['expected_reward']:.0%} "
            f"({success_range(why['success_low'], why['success_high'])}), "
            f"UCB bonus +{why['ucb_bonus']:.0%})"
        )
    _print_settings(console, settings)
    console.print(_model_footer(info))


VERSION_COLUMNS = ("Version", "Aliases", "Created", "Events", "Log-loss", "AUC")
WIDE_VERSION_COLUMNS = (
    "Version",
    "Aliases",
    "Created",
    "Events",
    "Updates",
    "Feature set",
    "Log-loss",
    "AUC",
    "Brier",
    "Run",
)
LOG_LOSS_KEYS = ("log_loss", "bandit_log_loss")
AUC_KEYS = ("auc", "bandit_auc")
BRIER_KEYS = ("brier", "bandit_brier")


def print_versions(name: str, versions: list[dict], wide: bool = False) -> None:
    """The registered versions of a model, newest first.

    The default columns fit 80 columns (creation date only); ``wide`` adds the time, the
    updates, the feature set, the Brier score and the run id.
    """
    columns = WIDE_VERSION_COLUMNS if wide else VERSION_COLUMNS
    table = Table(title=f"Registered versions of {name}")
    for column in columns:
        table.add_column(column, no_wrap=column in ("Created", "Run"))
    for row in versions:
        metrics = row["metrics"]
        cells = {
            "Version": str(row["version"]),
            "Aliases": ", ".join(row["aliases"]),
            "Created": row["created"] if wide else row["created"][:10],
            "Events": f"{row['events_trained']:,}",
            "Updates": f"{row['updates']:,}",
            "Feature set": row["feature_set"],
            "Log-loss": _metric(metrics, LOG_LOSS_KEYS),
            "AUC": _metric(metrics, AUC_KEYS),
            "Brier": _metric(metrics, BRIER_KEYS),
            "Run": str(row.get("run_id", "")),
        }
        table.add_row(*(cells[column] for column in columns))
    _console().print(table)


def _metric(metrics: dict, keys: tuple[str, ...]) -> str:
    """The first of ``keys`` the version has (short tag names first), to 4 decimals."""
    value = next((metrics[key] for key in keys if key in metrics), None)
    return "" if value is None else f"{value:.4f}"
