"""The error model: one base class, a few narrow subclasses, each with its exit code.

A user's mistake is printed by the CLI as one line, without a traceback. The exit codes are
documented in docs/running.md and are part of the command's contract.
"""

from __future__ import annotations


class ModelfactoryError(Exception):
    """Base class of every error that modelfactory reports to a user."""

    exit_code = 1


class ParamsError(ModelfactoryError):
    """A params file, key or value is wrong; raised before any kernel starts."""

    exit_code = 2


class ProjectNotFoundError(ModelfactoryError):
    """The command ran outside a modelfactory project (no params/base.yaml here or above)."""

    exit_code = 2


class SecretInParamsError(ParamsError):
    """A params value looks like a credential; credentials come from azure-identity instead."""


class PipelineError(ModelfactoryError):
    """The pipeline definition is malformed, or a stage's inputs cannot be found."""

    exit_code = 2


class DataValidationError(ModelfactoryError):
    """The data broke a check (rows, columns, missing or infinite values, the target's fit to the task).

    In a stage this fails the cell (the run exits 1); from ``modelfactory score`` it is the user's
    data, exit 2."""

    exit_code = 2


class DataNotFoundError(ParamsError, DataValidationError):
    """The data a model's params name is not there (yet): a dataset that is not registered, or a
    version it does not have. ``modelfactory run`` over several models skips that model (one line
    saying the command that fixes it) and runs the others; the exit code is still 2."""

    exit_code = 2


class InputFileError(ModelfactoryError):
    """A file named by --input or --output is missing, of a kind we cannot read or write, or taken."""

    exit_code = 2


class StageFailedError(ModelfactoryError):
    """A notebook cell raised; the saved notebook shows the error at that cell."""

    exit_code = 1


class KernelDiedError(StageFailedError):
    """The kernel process died (killed, out of memory) while a cell ran."""

    exit_code = 3


class CellTimeoutError(StageFailedError):
    """A cell ran longer than runner.cell_timeout_seconds."""

    exit_code = 4


class RunNotFoundError(ModelfactoryError):
    """No run folder matches the id that was given."""

    exit_code = 2


class PromotionError(ModelfactoryError):
    """The champion changed since the candidate was judged, or the version does not exist."""

    exit_code = 2


class RejectedVersionError(PromotionError):
    """A person asked to promote or deploy a version the gate rejected, without --force."""


class AzureSpecError(ModelfactoryError):
    """A spec Azure ML would refuse: a pipeline job, component, environment, schedule, AutoML job,
    data asset, endpoint or deployment that does not load or validate (every problem is listed), or
    the params or arguments that would make one."""

    exit_code = 2


class EndpointError(ModelfactoryError):
    """The local endpoint (the inference server on loopback) did not start, or stopped answering."""

    exit_code = 1


class ModelVersionError(ModelfactoryError):
    """--version is not a version number, or names a version the registry does not have."""

    exit_code = 2


class WorkspaceError(ModelfactoryError):
    """The workspace could not be reached; the message lists every way that was tried."""

    exit_code = 2


class AzureCallError(ModelfactoryError):
    """Azure ML refused or failed a call (an unknown job name, a missing compute, a network error)."""

    exit_code = 1


EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C: what was written so far is kept and marked interrupted."""
