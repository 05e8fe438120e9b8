"""A :class:`skbandit.linucb.LinUCB` state as plain data: the checks of ``set_state``.

The state is a dict of arrays and numbers (``np.savez`` writes it, no pickle). Version 1; the
``prior_mean`` array was added later without a version change, and a state without it loads
with zeros (the only prior before it existed).
"""

import numpy as np

from skbandit.exceptions import SkbanditError

STATE_VERSION = 1
STATE_ARRAYS = ("A", "b", "A_inv", "coef")
STATE_SCALARS = ("alpha", "l2", "forgetting", "n_updates", "n_features_in", "state_version")


def check_state(state, validate_params):
    missing = [k for k in (*STATE_ARRAYS, *STATE_SCALARS) if k not in state]
    if missing:
        raise SkbanditError(
            f"LinUCB state is missing {missing} (expected the dict from LinUCB.get_state(), "
            f"found keys {sorted(state)}); save the model with get_state()"
        )
    if int(state["state_version"]) != STATE_VERSION:
        raise SkbanditError(
            f"LinUCB state has version {int(state['state_version'])}, expected "
            f"{STATE_VERSION}; re-export the model with this version of skbandit"
        )
    d = int(state["n_features_in"])
    shapes = {"A": (d, d), "b": (d,), "A_inv": (d, d), "coef": (d,), "prior_mean": (d,)}
    arrays = {}
    for name in (*STATE_ARRAYS, "prior_mean"):
        if name == "prior_mean" and name not in state:
            arrays[name] = np.zeros(d)  # saved before the prior mean existed
            continue
        value = np.array(state[name], dtype=np.float64)
        if value.shape != shapes[name] or not np.isfinite(value).all():
            raise SkbanditError(
                f"LinUCB state array {name!r} must be finite with shape {shapes[name]} "
                f"(n_features_in={d}), found shape {value.shape}; the state is corrupt"
            )
        arrays[name] = value
    params = {k: float(state[k]) for k in ("alpha", "l2", "forgetting")}
    validate_params(params)
    if not (np.array_equal(arrays["A"], arrays["A"].T) and state["n_updates"] >= 0):
        raise SkbanditError("LinUCB state is corrupt: A is not symmetric or n_updates < 0")
    scalars = {**params, "n_updates": int(state["n_updates"]), "n_features_in": d}
    names = state.get("feature_names_in")
    if names is not None:
        names = np.asarray(names, dtype=object)
        if names.shape != (d,):
            raise SkbanditError(
                f"LinUCB state 'feature_names_in' must have {d} names, found {names.shape}"
            )
    return arrays, scalars, names


def state_of(model):
    """The state dict of a fitted ``model`` (see ``LinUCB.get_state``); copies, no views."""
    state = {name: getattr(model, name + "_").copy() for name in STATE_ARRAYS}
    state["prior_mean"] = model.prior_mean_.copy()
    state.update(
        alpha=float(model.alpha),
        l2=float(model.l2),
        forgetting=float(model.forgetting),
        n_updates=int(model.n_updates_),
        n_features_in=int(model.n_features_in_),
        state_version=STATE_VERSION,
    )
    if hasattr(model, "feature_names_in_"):
        state["feature_names_in"] = np.asarray(model.feature_names_in_, dtype=str)
    return state


def restore(model, arrays, scalars, names):
    """Set ``model``'s parameters and fitted attributes from a checked state.

    ``arrays``, ``scalars`` and ``names`` as :func:`check_state` returns them. An all-zero
    prior mean restores ``prior_mean=None`` (the same prior).
    """
    arrays = dict(arrays)
    prior = arrays.pop("prior_mean")
    params = {k: scalars[k] for k in ("alpha", "l2", "forgetting")}
    params["prior_mean"] = prior.copy() if prior.any() else None
    model.set_params(**params)
    model.prior_mean_, model._fitted_l2 = prior, scalars["l2"]
    model._fitted_prior_param = model.prior_mean
    for name in ("feature_names_in_", "_headroom"):
        vars(model).pop(name, None)
    for name, value in arrays.items():
        setattr(model, name + "_", value)
    model.n_updates_ = scalars["n_updates"]
    model.n_features_in_ = scalars["n_features_in"]
    if names is not None:
        model.feature_names_in_ = names


def check_prior_unchanged(model):
    """Raise if ``l2`` or ``prior_mean`` differ from the prior the state was built with."""
    if not hasattr(model, "prior_mean_"):
        return
    changed = []
    if float(model.l2) != model._fitted_l2:
        changed.append(f"l2 from {model._fitted_l2:g} to {float(model.l2):g}")
    if model.prior_mean is not model._fitted_prior_param:
        prior = resolved_prior(model.prior_mean, model.prior_mean_.shape[0])
        if not np.array_equal(prior, model.prior_mean_):
            changed.append("prior_mean")
        else:
            model._fitted_prior_param = model.prior_mean
    if changed:
        raise SkbanditError(
            f"LinUCB's prior changed after fitting ({', '.join(changed)}); the fitted "
            "state was built with the old one. Call fit() to refit with the new prior, "
            "or set the parameter back"
        )


def resolved_prior(prior_mean, d):
    """``prior_mean`` as a finite float64 array of shape ``(d,)`` (zeros for ``None``)."""
    if prior_mean is None:
        return np.zeros(d)
    try:
        prior = np.array(prior_mean, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise SkbanditError(
            f"LinUCB prior_mean must be numbers ({err}); pass one coefficient per feature"
        ) from err
    if prior.shape != (d,) or not np.isfinite(prior).all():
        raise SkbanditError(
            f"LinUCB prior_mean must be {d} finite numbers (one per feature), found "
            f"shape {prior.shape}; pass one coefficient per feature column"
        )
    return prior
