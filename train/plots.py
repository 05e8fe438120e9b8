"""Figures for a warm-start run (matplotlib, Agg backend, returned as Figure objects)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve

from skbandit.progressive import PREDICTORS

LABELS = {"bandit": "LinUCB", "global_rate": "global success rate", "irt": "IRT only"}


def progressive_validation(history: pd.DataFrame) -> plt.Figure:
    """Per-batch log-loss, Brier score and AUC of the bandit and both baselines."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    for ax, metric in zip(axes, ("log_loss", "brier", "auc"), strict=True):
        for name in PREDICTORS:
            ax.plot(history["events_seen"], history[f"{name}_{metric}"], label=LABELS[name])
        ax.set_xlabel("events seen")
        ax.set_title(metric.replace("_", " "))
    axes[0].legend()
    fig.suptitle("Progressive validation (each batch predicted before it is learned)")
    return fig


def calibration(predictions: pd.DataFrame, n_bins: int = 10) -> plt.Figure:
    """Reliability curve: mean forecast against observed success rate, per bin."""
    fig, ax = plt.subplots(figsize=(5, 5), constrained_layout=True)
    outcome = (predictions["reward"].to_numpy() >= 0.5).astype(int)
    for name in PREDICTORS:
        forecast = np.clip(predictions[name].to_numpy(), 0.0, 1.0)
        observed, mean_forecast = calibration_curve(outcome, forecast, n_bins=n_bins)
        ax.plot(mean_forecast, observed, marker="o", label=LABELS[name])
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    ax.set_xlabel("forecast success probability")
    ax.set_ylabel("observed success rate")
    ax.legend()
    return fig


def uncertainty_decay(history: pd.DataFrame) -> plt.Figure:
    """Mean exploration width of each batch's forecasts as events accumulate."""
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    ax.plot(history["events_seen"], history["mean_uncertainty"])
    ax.set_xscale("log")
    ax.set_xlabel("events seen")
    ax.set_ylabel("mean uncertainty (alpha * std)")
    return fig


def coefficients(names, values) -> plt.Figure:
    """The learned weight of every model feature."""
    order = np.argsort(values)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(values) + 1.5), constrained_layout=True)
    ax.barh(np.asarray(names)[order], np.asarray(values)[order])
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("coefficient")
    return fig
