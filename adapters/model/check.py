"""``skbandit verify-model``: check a registered version before plain ``mlflow models serve``.

``mlflow models serve`` imports the loader module that a version's ``MLmodel`` names, with
the ``code`` paths it lists on ``sys.path``, before any code of skbandit runs: whoever can
write the artifact store can make it run code. :func:`verify_version` checks what MLflow
would read: the recorded sha256 checksums of every stored file (in the registry database,
not the artifact store), that the version is not pending, that ``MLmodel`` names the
installed loader (:data:`adapters.model.flavor.LOADER_MODULE`, or the name versions registered
before the adapters were grouped carry, ``adapters.model_flavor``) and no code paths, pickled
model or other flavor, and that no ``code/`` folder is stored. ``skbandit serve`` does the
checksum check itself before MLflow reads ``MLmodel``.
"""

from __future__ import annotations

from skbandit.exceptions import SkbanditError

ALLOWED_PYFUNC_KEYS = {"loader_module", "data", "env", "python_version", "predict_fn", "streamable"}
"""The ``python_function`` flavor keys a version may set (a non-null ``code``,
``python_model``, ``cloudpickle_version`` or ``artifacts`` would point MLflow at stored code
or pickles)."""


LEGACY_LOADER_MODULE = "adapters.model_flavor"  # named by versions registered before issue 20


def verify_version(ref):
    """The version ``ref`` names, after every check above; SkbanditError names the first
    failure in one line."""
    import yaml

    from adapters import registry
    from adapters.model.flavor import LOADER_MODULE

    version = registry.resolve_version(ref)
    what = f"{version.name} version {version.version}"
    with registry._model_folder(version) as folder:
        registry.verify_stored_files(version, folder)
        try:
            mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
        except (OSError, yaml.YAMLError) as error:
            raise SkbanditError(f"{what}: cannot read its MLmodel ({error})") from None
        flavors = (mlmodel or {}).get("flavors") or {}
        others = sorted(set(flavors) - {"python_function"})
        if others:
            raise SkbanditError(
                f"{what}: MLmodel has flavors {others}; a skbandit version has only python_function"
            )
        pyfunc = flavors.get("python_function") or {}
        if pyfunc.get("loader_module") not in (LOADER_MODULE, LEGACY_LOADER_MODULE):
            raise SkbanditError(
                f"{what}: MLmodel names loader module "
                f"{pyfunc.get('loader_module')!r}, not {LOADER_MODULE!r}; "
                "mlflow would import it"
            )
        extra = sorted(k for k in set(pyfunc) - ALLOWED_PYFUNC_KEYS if pyfunc[k] is not None)
        if extra:
            raise SkbanditError(
                f"{what}: MLmodel's python_function has {extra} (stored code "
                "or a pickled model mlflow would run)"
            )
        if (folder / "code").exists():
            raise SkbanditError(f"{what}: a code/ folder is stored with it")
    return version
