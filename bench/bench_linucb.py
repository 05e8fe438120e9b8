"""Benchmark LinUCB against an ideal NumPy reference (issues 3 and 9).

Run from the repository root::

    python -m bench.bench_linucb            # full table (about a minute)
    python -m bench.bench_linucb --quick    # skip n = 1e6 and shorten the timings

Every time is the best of several repeats (the machine is shared and noisy). The reference
is the ideal NumPy code written here: ``A = λI + XᵀX``, ``b = Xᵀy`` and a Cholesky solve for
fitting; ``X @ θ`` and the cached-inverse row-wise quadratic form ``((X @ A⁻¹) * X).sum(1)``
for scoring; a Sherman–Morrison rank-one update of ``A⁻¹`` for the online loop. Ratios are
ours / reference time (lower is better); compare ratios, not absolute times, between runs.

Targets: every ratio <= 2, except scoring K = 1,000 candidates (``predict(X,
return_std=True)``) <= 1.5 and the online choose -> observe -> update loop <= 2 (issue 9);
issue 20 asks <= 1.3 for both. The online loop is also given as the median of paired rounds
(ours then the reference, back to back), the steadier figure on a busy machine.
This script prints a table, then the issue 9 targets and whether each is met; it asserts
nothing.
"""

import argparse
import time

import numpy as np

from skbandit import LinUCB

ALPHA = 1.0
L2 = 1.0
SCORE_TARGETS = {1_000: 1.5}  # K -> largest acceptable ratio (issue 9); others 2
ONLINE_TARGET = 2.0
ISSUE20_TARGET = 1.3
"""Issue 20: scoring K = 1,000 and the online loop within 1.3x the reference."""


def best_times(fns, repeats=5, min_time=0.05):
    """Best wall time of one call of each function, over ``repeats`` interleaved rounds.

    The functions take turns in every round, so load from other processes on this shared
    machine hits ours and the reference alike; each round runs an auto-sized number of calls.
    """
    numbers = []
    for fn in fns:
        fn()
        number = 1
        while True:
            elapsed = _clock_loop(fn, number)
            if elapsed >= min_time or number >= 1 << 20:
                break
            number *= 2
        numbers.append(number)
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, (fn, number) in enumerate(zip(fns, numbers, strict=True)):
            best[i] = min(best[i], _clock_loop(fn, number) / number)
    return best


def _clock_loop(fn, number):
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - start


# ----------------------------------------------------------------- the reference
def reference_fit(X, y, l2=L2):
    """Ideal batch fit: one ``XᵀX`` product (BLAS syrk), one Cholesky factorisation.

    numpy's own LAPACK is used, not ``scipy.linalg.cho_solve``: SciPy bundles a second
    OpenBLAS whose thread pool stalls for milliseconds on small solves when the machine is
    loaded, which would make the reference slow and flatter our ratio.
    """
    d = X.shape[1]
    A = l2 * np.eye(d) + X.T @ X
    b = X.T @ y
    L_inv = np.linalg.inv(np.linalg.cholesky(A))
    return L_inv.T @ (L_inv @ b), L_inv.T @ L_inv


def reference_score(X, theta, A_inv, alpha=ALPHA):
    """Ideal scoring: mean, cached-inverse quadratic form, UCB."""
    mean = X @ theta
    std = np.sqrt(np.maximum(((X @ A_inv) * X).sum(axis=1), 0.0))
    return mean + alpha * std


def reference_online(candidate_sets, uniforms, true_theta, alpha=ALPHA, l2=L2):
    """Ideal online loop: score, argmax, Sherman–Morrison update of ``A⁻¹``."""
    d = candidate_sets.shape[2]
    A_inv, b, theta = np.eye(d) / l2, np.zeros(d), np.zeros(d)
    for Xc, u in zip(candidate_sets, uniforms, strict=True):
        mean = Xc @ theta
        ucb = mean + alpha * np.sqrt(np.maximum(((Xc @ A_inv) * Xc).sum(axis=1), 0.0))
        x = Xc[int(np.argmax(ucb))]
        reward = float(u < _success(x, true_theta))
        Ax = A_inv @ x
        A_inv -= np.outer(Ax, Ax) / (1.0 + x @ Ax)
        b += reward * x
        theta = A_inv @ b


def ours_online(candidate_sets, uniforms, true_theta, alpha=ALPHA, l2=L2):
    """The same loop through the public estimator API."""
    model = LinUCB(alpha=alpha, l2=l2).fit(np.zeros((1, candidate_sets.shape[2])), [0.0])
    for Xc, u in zip(candidate_sets, uniforms, strict=True):
        mean, std = model.predict(Xc, return_std=True)
        j = int(np.argmax(mean + alpha * std))
        reward = float(u < _success(Xc[j], true_theta))
        model.partial_fit(Xc[j : j + 1], np.array([reward]))
    return model


def _success(x, true_theta):
    return 1.0 / (1.0 + np.exp(-(x @ true_theta)))


# -------------------------------------------------------------------- the rows
def fit_rows(sizes, dims, repeats):
    rng = np.random.default_rng(0)
    rows = []
    for d in dims:
        for n in sizes:
            X = rng.normal(size=(n, d))
            y = (rng.random(n) < 0.6).astype(np.float64)
            ours, one, ref = best_times(
                [
                    lambda X=X, y=y: LinUCB(l2=L2).fit(X, y),
                    lambda X=X, y=y: LinUCB(l2=L2).partial_fit(X, y),
                    lambda X=X, y=y: reference_fit(X, y),
                ],
                repeats,
            )
            label = f"fit n={n:.0e} d={d}"
            rows.append(_ratio_row(label, n / ours, n / ref, "rows/s", ours / ref))
            rows.append(
                _ratio_row(f"  one partial_fit, {label[4:]}", n / one, n / ref, "rows/s", one / ref)
            )
            del X
    return rows


def score_rows(ks, repeats, d=8):
    rng = np.random.default_rng(1)
    model = LinUCB(alpha=ALPHA).fit(rng.normal(size=(5000, d)), rng.random(5000))
    rows = []
    for k in ks:
        Xc = rng.normal(size=(k, d))

        def combined(Xc=Xc):
            mean, std = model.predict(Xc, return_std=True)
            return mean + ALPHA * std

        def separate(Xc=Xc):
            return model.predict(Xc) + model.predict_uncertainty(Xc)

        def reference(Xc=Xc):
            return reference_score(Xc, model.coef_, model.A_inv_)

        ours, two, ref = best_times([combined, separate, reference], repeats)
        rows.append(
            _ratio_row(
                f"score K={k} d={d} (predict return_std)",
                ours * 1e6,
                ref * 1e6,
                "us",
                ours / ref,
                higher_is_better=False,
                limit=SCORE_TARGETS.get(k, 2.0),
            )
        )
        rows.append(
            _ratio_row(
                f"  predict + predict_uncertainty K={k}",
                two * 1e6,
                ref * 1e6,
                "us",
                two / ref,
                higher_is_better=False,
            )
        )
    return rows


def online_row(n_decisions, repeats, k=100, d=8):
    """The online loop, best of ``repeats`` interleaved rounds, and a second row with the
    median of the rounds' paired ratios (each round runs ours, then the reference, back to
    back, so a burst of load from other processes mostly hits both)."""
    rng = np.random.default_rng(2)
    candidate_sets = rng.normal(size=(n_decisions, k, d))
    uniforms = rng.random(n_decisions)
    true_theta = rng.normal(size=d) / np.sqrt(d)

    def ours_fn():
        ours_online(candidate_sets, uniforms, true_theta)

    def ref_fn():
        reference_online(candidate_sets, uniforms, true_theta)

    ours_fn(), ref_fn()
    rounds = [(_clock_loop(ours_fn, 1), _clock_loop(ref_fn, 1)) for _ in range(repeats)]
    ours, ref = (min(times) for times in zip(*rounds, strict=True))
    paired = float(np.median([o / r for o, r in rounds]))
    label = f"online loop K={k} d={d}"
    return [
        (
            label,
            f"{n_decisions / ours:,.0f} dec/s",
            f"{n_decisions / ref:,.0f} dec/s",
            f"{ours / ref:.2f}",
            f"ratio <= {ONLINE_TARGET:g}",
            ours / ref <= ONLINE_TARGET,
        ),
        (
            f"  {label}, median paired round",
            "-",
            "-",
            f"{paired:.2f}",
            f"ratio <= {ISSUE20_TARGET:g}",
            paired <= ISSUE20_TARGET,
        ),
    ]


def memory_row(d=8):
    rng = np.random.default_rng(3)
    sizes = {}
    for n in (10_000, 1_000_000):
        model = LinUCB().fit(rng.normal(size=(n, d)), rng.random(n))
        sizes[n] = sum(np.asarray(v).nbytes for v in model.get_state().values())
    return (
        f"state bytes d={d}, 1e4 vs 1e6 rows",
        f"{sizes[1_000_000]:,} B",
        f"{sizes[10_000]:,} B (1e4 rows)",
        "-",
        "independent of n",
        sizes[10_000] == sizes[1_000_000],
    )


def full_rank_row(repeats, n_candidates=1000):
    """Rank 1,000 raw candidates through the feature pipeline and ``rank_linucb`` (issue 3 §5).

    The row prints n/a, with the reason, if that code does not import or run.
    """
    label = f"full rank {n_candidates:,} raw candidates"
    try:
        import pandas as pd

        from skbandit import schema
        from skbandit.model import TrainedModel
        from skbandit.policy import rank_linucb
        from skbandit.ranking_settings import RankingSettings
    except ImportError as err:
        return (label, "n/a", "-", "-", "<= 3 ms", f"n/a ({err.name})")
    try:
        rng = np.random.default_rng(4)
        n = n_candidates
        frame = pd.DataFrame(
            {
                schema.USER_ID: "u1",
                schema.ITEM_ID: [f"i{i}" for i in range(n)],
                schema.TOPIC: "fractions",
                schema.MASTERY: rng.random(n),
                schema.RECENT_ACCURACY: rng.random(n),
                schema.RECENT_SPEED: rng.random(n),
                schema.HELP_TENDENCY: rng.random(n) * 0.3,
                schema.SKILL_GAP: rng.random(n) * 0.5,
                schema.DIFFICULTY: rng.normal(size=n),
                schema.DISCRIMINATION: 1.0,
                schema.ITEM_ATTEMPTS: rng.integers(0, 500, n).astype(float),
                schema.ITEM_ACCURACY: rng.random(n),
                schema.GUESSING: 0.0,
            }
        )
        for column in schema.MODEL_INPUT:  # any model input added since (0 = not given)
            if column not in frame:
                frame[column] = 0.0
        pipeline = TrainedModel().partial_fit(frame, (rng.random(n) < 0.6) * 1.0)
        settings = RankingSettings(top_k=5)
        (seconds,) = best_times(
            [lambda: rank_linucb(pipeline, frame, settings, rng=np.random.default_rng(0))], repeats
        )
    except Exception as err:  # the other engineer's code may be mid-change; report, go on
        return (label, f"n/a ({type(err).__name__}: {err})"[:60], "-", "-", "<= 3 ms", "n/a")
    return (label, f"{seconds * 1e3:.2f} ms", "-", "-", "<= 3 ms", seconds <= 3e-3)


def _ratio_row(label, ours, ref, unit, ratio, higher_is_better=True, limit=2.0):
    fmt = (lambda v: f"{v:,.0f} {unit}") if higher_is_better else (lambda v: f"{v:,.1f} {unit}")
    return (label, fmt(ours), fmt(ref), f"{ratio:.2f}", f"ratio <= {limit:g}", ratio <= limit)


def print_issue_targets(rows):
    """The speed targets of issues 9 and 20, picked out of the table."""
    wanted = {
        "score K=1000 d=8 (predict return_std)": "score K=1,000 candidates",
        "online loop K=100 d=8": "online choose -> observe -> update loop",
        "  online loop K=100 d=8, median paired round": "online loop, median paired round",
    }
    print("\nissue 9 targets (<= 1.5 / 2) and issue 20 targets (<= 1.3), ours / reference time:")
    print("| measure | ratio | issue 9 | issue 20 (<= 1.3) |")
    print("|---|---:|---|---|")
    for label, _, _, ratio, target, met in rows:
        if label in wanted:
            issue20 = _cell(float(ratio) <= ISSUE20_TARGET)
            print(f"| {wanted[label]} | {ratio}x | {target} {_cell(met)} | {issue20} |")


def print_table(rows):
    header = ("benchmark", "ours", "reference", "ratio", "target", "pass")
    cells = [header] + [tuple(_cell(v) for v in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    for i, row in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print(line)


def _cell(value):
    if isinstance(value, (bool, np.bool_)):
        return "PASS" if value else "FAIL"
    return str(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip n=1e6, fewer repeats")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    sizes = (10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000)
    rows = fit_rows(sizes, (8, 32), repeats)
    rows += score_rows((100, 1_000, 10_000), repeats)
    # many short rounds rather than a few long ones: on a shared machine more rounds are
    # likely to include a quiet one for each side
    rows += online_row(1_000, repeats=9 if args.quick else 25)
    rows.append(memory_row())
    rows.append(full_rank_row(repeats))
    print_table(rows)
    print_issue_targets(rows)


if __name__ == "__main__":
    main()
