"""Where features' metadata models are listed, so Alembic sees the whole schema.

The kernel never imports a feature at import time; this list of module names is read only
when migrations run or are generated.
"""

import importlib

FEATURE_MODEL_MODULES: list[str] = ["spyglass.errors.models", "spyglass.errors.releases",
                                    "spyglass.otel.dashboards",
                                    "spyglass.otel.sampling"]


def import_all_models() -> None:
    for name in FEATURE_MODEL_MODULES:
        importlib.import_module(name)
