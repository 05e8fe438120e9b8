"""Figures for a warm-start run (matplotlib, Agg backend, returned as Figure objects).

Every figure has a title and is sized to read at MLflow's artifact viewer width (about
1000 px wide at 100 dpi). The progressive-validation curves are scaled to the batches after
the first: the first batch is predicted by an untrained model, and its spike would
otherwise flatten the gap between LinUCB and the baselines.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, MaxNLocator
from sklearn.calibration import calibration_curve

from skbandit.progressive import PREDICTORS

LABELS = {"bandit": "LinUCB", "global_rate": "global success rate", "irt": "IRT only"}
METRIC_TITLES = {
    "log_loss": "Log-loss per batch (lower is better)",
    "brier": "Brier score per batch (lower is better)",
    "auc": "AUC per batch (higher is better)",
}
GLOSSARY_NOTE = "Feature names are explained in docs/features.md"


def _events_axis(ax) -> None:
    """Readable event counts on the x axis: at most 5 ticks, 12k rather than 12000."""
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(_count))
    ax.set_xlabel("events seen")


def _count(value, _position=None) -> str:
    """``1.2M``, ``35k`` or ``800``."""
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    return f"{value / 1e3:g}k" if abs(value) >= 1e3 else f"{value:g}"


def value_range(history: pd.DataFrame, metric: str) -> tuple[float, float] | None:
    """y limits covering every predictor's ``metric`` after the first batch, with 10 % margin.

    None when there is only one batch (or no finite value after it).

    >>> frame = pd.DataFrame({f"{p}_log_loss": [3.9, 0.6, 0.7] for p in PREDICTORS})
    >>> [round(v, 2) for v in value_range(frame, "log_loss")]
    [0.59, 0.71]
    """
    later = history.iloc[1:][[f"{name}_{metric}" for name in PREDICTORS]].to_numpy(float)
    later = later[np.isfinite(later)]
    if later.size == 0:
        return None
    low, high = float(later.min()), float(later.max())
    pad = 0.1 * (high - low) or 0.01
    return low - pad, high + pad


def progressive_validation(history: pd.DataFrame) -> plt.Figure:
    """Per-batch log-loss, Brier score and AUC of the bandit and both baselines."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2), dpi=100, constrained_layout=True)
    for ax, metric in zip(axes, METRIC_TITLES, strict=True):
        for name in PREDICTORS:
            ax.plot(history["events_seen"], history[f"{name}_{metric}"], label=LABELS[name])
        limits = value_range(history, metric)
        if limits is not None:
            ax.set_ylim(*limits)
        ax.set_title(METRIC_TITLES[metric], fontsize=11)
        ax.grid(alpha=0.3)
        _events_axis(ax)
    axes[0].legend(fontsize=9)
    first = int(history["events_seen"].iloc[0]) if len(history) else 0
    fig.suptitle(
        "Progressive validation: each batch is predicted before it is learned "
        f"(y axes fit the batches after the first {first:,} events)",
        fontsize=12,
    )
    return fig


def calibration(predictions: pd.DataFrame, n_bins: int = 10) -> plt.Figure:
    """Reliability curve: mean forecast against observed success rate, per bin."""
    fig, ax = plt.subplots(figsize=(6, 5.5), dpi=100, constrained_layout=True)
    outcome = (predictions["reward"].to_numpy() >= 0.5).astype(int)
    for name in PREDICTORS:
        forecast = np.clip(predictions[name].to_numpy(), 0.0, 1.0)
        observed, mean_forecast = calibration_curve(outcome, forecast, n_bins=n_bins)
        ax.plot(mean_forecast, observed, marker="o", label=LABELS[name])
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    ax.set_xlabel("forecast success probability")
    ax.set_ylabel("observed success rate")
    ax.set_title("Calibration: forecast vs observed success")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def uncertainty_decay(history: pd.DataFrame) -> plt.Figure:
    """Mean exploration width of each batch's forecasts as events accumulate."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100, constrained_layout=True)
    ax.plot(history["events_seen"], history["mean_uncertainty"])
    ax.set_xscale("log")
    ax.set_xlabel("events seen (log scale)")
    ax.set_ylabel("mean uncertainty (alpha * std)")
    ax.set_title("Exploration width shrinks as the model sees more events")
    ax.grid(alpha=0.3, which="both")
    return fig


def coefficients(names, values) -> plt.Figure:
    """The learned weight of every model feature (names as in docs/features.md)."""
    order = np.argsort(values)
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(values) + 1.8), dpi=100, constrained_layout=True)
    ax.barh(np.asarray(names)[order], np.asarray(values)[order])
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel(f"coefficient (change in expected success per unit)\n{GLOSSARY_NOTE}")
    ax.set_title("Learned weight of each feature")
    ax.grid(alpha=0.3, axis="x")
    return fig
