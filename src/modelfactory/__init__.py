"""modelfactory: parameterized notebooks, run by papermill on a laptop or as Azure ML jobs.

The public API is small: resolve params, open a stage from a notebook, run a pipeline.
"""

from modelfactory.errors import ModelfactoryError, ParamsError, PipelineError, StageFailedError

__all__ = ["ModelfactoryError", "ParamsError", "PipelineError", "StageFailedError", "__version__"]
__version__ = "0.1.0"
