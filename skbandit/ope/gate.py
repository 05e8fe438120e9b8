"""The promotion gate: may a candidate policy replace the baseline, judged off-policy?"""

import numpy as np

DEFAULT_MIN_ESS = 100.0
"""Smallest effective sample size of the candidate's estimate that may promote it.

``tests/test_ope_validation.py`` shows that percentile-bootstrap intervals of SNIPS and DR
under-cover when only a few dozen logged decisions carry the weight.
"""


def promotion_gate(candidate, baseline, min_ess=DEFAULT_MIN_ESS) -> tuple[bool, str]:
    """Whether the candidate may replace the baseline, and why (one sentence).

    Parameters
    ----------
    candidate, baseline : PolicyValueEstimate
        Off-policy estimates of the two target policies on the same logged decisions.
    min_ess : float, default=DEFAULT_MIN_ESS
        Smallest effective sample size of the candidate's estimate that may promote.

    Returns
    -------
    passes : bool
        True when ``candidate.ci_low > baseline.value`` and the candidate's effective
        sample size is at least ``min_ess``.
    reason : str

    Examples
    --------
    >>> from skbandit.ope.estimators import PolicyValueEstimate
    >>> cand = PolicyValueEstimate("dr", 0.80, 0.75, 0.85, 1000, 500.0, 3.0)
    >>> base = PolicyValueEstimate("dr", 0.70, 0.60, 0.80, 1000, 500.0, 3.0)
    >>> promotion_gate(cand, base)
    (True, "the candidate's lower bound 0.7500 beats the baseline's estimate 0.7000")
    """
    if not np.isfinite(candidate.ci_low):
        return False, "the candidate's interval is undefined (no bootstrap resample overlapped)"
    if candidate.effective_sample_size < min_ess:
        ess = candidate.effective_sample_size
        return False, (f"the candidate's effective sample size {ess:.0f} is below --min-ess "
                       f"{min_ess:g}, so its interval cannot be trusted (evaluate a softmax "
                       "policy or log more exploration)")
    verb = "beats" if candidate.ci_low > baseline.value else "does not beat"
    return candidate.ci_low > baseline.value, (
        f"the candidate's lower bound {candidate.ci_low:.4f} {verb} the baseline's estimate "
        f"{baseline.value:.4f}")
