"""The keys of an estimator spec (``params.train``, ``params.search.candidates``) that configure the
pipeline around the estimator; every other key is one of the estimator's hyperparameters.

One list, read by modeling.py (building the pipeline, naming the estimator) and by the run's index
page (ops/report.py). It lives alone so that the index page names the hyperparameters without
importing modeling.py, whose pandas and numpy take a second or more to import.
"""

RESERVED_KEYS = ("estimator", "scale_features", "preprocess")


def hyperparameters(spec) -> dict:
    """The estimator's hyperparameters in a spec: every key but the reserved ones."""
    return {k: v for k, v in spec.items() if k not in RESERVED_KEYS}
