"""What ``python -m train.evaluate compare`` shows: the rich table, the JSON and the plot.

:mod:`train.evaluate.compare.job` runs the comparison and hands its
:class:`~train.evaluate.compare.options.Comparison` here. rich and matplotlib are imported
inside the functions, so importing this module costs
nothing and ``--help`` stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import Console

    from train.evaluate.compare.options import CompareOptions, Comparison


def interval_plot(result: Comparison, options: CompareOptions) -> Figure:
    """Both estimates with their bootstrap intervals; the baseline value is the bar to beat."""
    from train.warmstart.plots import plt

    fig, ax = plt.subplots(figsize=(7, 2.8), constrained_layout=True)
    labels = [f"baseline v{result.baseline_version}", f"candidate v{result.candidate_version}"]
    base = result.baseline
    for y, estimate in enumerate((base, result.candidate)):
        low, high = estimate.ci_low, estimate.ci_high
        ax.errorbar(
            estimate.value,
            y,
            xerr=[[estimate.value - low], [high - estimate.value]],
            fmt="o",
            capsize=6,
            color=f"C{y}",
        )
    ax.axvline(
        base.value,
        color="grey",
        linestyle="--",
        linewidth=0.8,
        label="baseline estimate (the bar to beat)",
    )
    ax.set_yticks([0, 1], labels)
    ax.set_ylim(-0.7, 1.7)
    what = (
        "estimated success rate"
        if options.reward == "correct"
        else "estimated learning reward (logits)"
    )
    ax.set_xlabel(f"{what} ({options.estimator}, {options.confidence:.0%} bootstrap interval)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def print_comparison(console: Console, result: Comparison, options: CompareOptions) -> None:
    """The table of both estimates, their warnings, the alias that moved and the verdict."""
    from rich.table import Table

    table = Table(
        title=f"Off-policy comparison ({options.estimator}, {options.ranking.exploration}, "
        f"reward {options.reward}, {result.n_decisions:,} logged decisions)"
    )
    for column in (
        "policy",
        "version",
        "estimate",
        f"{options.confidence:.0%} interval",
        "ESS",
        "max weight",
    ):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for role, estimate, version in (
        ("candidate", result.candidate, result.candidate_version),
        ("baseline", result.baseline, result.baseline_version),
    ):
        table.add_row(
            role,
            version,
            f"{estimate.value:.4f}",
            f"[{estimate.ci_low:.4f}, {estimate.ci_high:.4f}]",
            f"{estimate.effective_sample_size:,.0f}",
            f"{estimate.max_weight:.3g}",
        )
    difference = result.difference
    table.add_row(
        "difference",
        f"{result.candidate_version} - {result.baseline_version}",
        f"{difference.value:+.4f}",
        f"[{difference.ci_low:+.4f}, {difference.ci_high:+.4f}]",
        f"{difference.effective_sample_size:,.0f}",
        "",
    )
    console.print(table)
    console.print(
        f"the gate decides on the difference; its interval resamples the "
        f"{difference.n_students:,} students",
        highlight=False,
    )
    for role, estimate in (("candidate", result.candidate), ("baseline", result.baseline)):
        if estimate.warning:
            console.print(f"[yellow]{role}: {estimate.warning}[/yellow]", soft_wrap=True)
    for note in result.notes:
        console.print(f"[yellow]note: {note}[/yellow]", soft_wrap=True)
    console.print(_verdict(result, options), highlight=False, soft_wrap=True)
    console.print(f"run id {result.run_id}", highlight=False)


def _verdict(result: Comparison, options: CompareOptions) -> str:
    """Whether ``champion`` moved, and why (rich markup)."""
    from adapters.registry import CHAMPION_ALIAS

    if result.promoted:
        return (
            f"[green]promoted:[/green] {CHAMPION_ALIAS!r} -> v{result.candidate_version} "
            f"because {result.reason}"
        )
    if options.promote:
        return (
            f"[red]not promoted:[/red] {result.reason}; {CHAMPION_ALIAS!r} did not move "
            "(the refusal is recorded as gate.* tags on the candidate version)"
        )
    return (
        f"not promoted (no --promote, so no alias moved); the gate would "
        f"{'pass' if result.passes else 'fail'}: {result.reason}"
    )


def comparison_json(result: Comparison) -> str:
    """The whole :class:`~train.evaluate.compare.options.Comparison` as indented JSON."""
    import json
    from dataclasses import asdict

    payload = asdict(result)
    return json.dumps(payload, indent=2, default=str)
