"""Pipeline definitions (pipelines/*.yaml): stages, their notebooks, what each needs and produces.

The local runner plans from this, and so will the Azure ML job builder: one definition, two places
to run it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelfactory import paths
from modelfactory.errors import ParamsError, PipelineError
from modelfactory.yamlfile import read_yaml


class StageSpec(BaseModel):
    """One stage: a notebook, the params sections (and registry state) and earlier stages' outputs it
    reads, and the outputs it must write."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    notebook: str
    needs: dict[str, list[str]] = {}
    reads: list[str] = []  # params sections beyond cache.ALWAYS_READS, and "champion": its cache key
    cache: bool = True     # False: always run (it reads something its key cannot hash)
    produces: list[str] = []
    headline: bool = False
    records: list[str] = []


class PipelineSpec(BaseModel):
    """A whole pipeline: stages in the order they run."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    dataset: str | None = None
    stages: list[StageSpec] = Field(min_length=1)

    def stage(self, name: str) -> StageSpec:
        """The stage of that name."""
        return next(s for s in self.stages if s.name == name)

    @property
    def names(self) -> list[str]:
        """Stage names, in order."""
        return [s.name for s in self.stages]


# Every pipeline whose notebooks ship, in the order their notebooks can run by hand: scoring and
# monitoring need the champion that training's deploy stage promotes.
NOTEBOOK_PIPELINES = ("training", "scoring", "monitoring")


def notebook_paths(root: Path | None = None) -> list[Path]:
    """Every shipped notebook, each once, in an order they can run in one after the other."""
    found: list[Path] = []
    for name in NOTEBOOK_PIPELINES:
        for stage in load_pipeline(name, root).stages:
            path = (root or paths.project_root()) / stage.notebook
            if path not in found:
                found.append(path)
    return found


def load_pipeline(name_or_path: str = "training", root: Path | None = None) -> PipelineSpec:
    """Read and check a pipeline definition: a name under pipelines/, or a path."""
    root = root or paths.project_root()
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = paths.pipelines_dir(root) / f"{name_or_path}.yaml"
    elif not path.is_absolute():
        path = root / path
    shown = paths.relative_to_root(path, root)
    if not path.is_file():
        known = sorted(p.stem for p in paths.pipelines_dir(root).glob("*.yaml"))
        raise PipelineError(f"no pipeline definition {shown} (pipelines/ has {', '.join(known) or 'none'})")
    try:
        spec = PipelineSpec.model_validate(read_yaml(path, root))  # UTF-8, no aliases, one-line errors
    except ParamsError as exc:
        raise PipelineError(str(exc)) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        raise PipelineError(f"{shown}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    _check(spec, shown, root)
    return spec


def _check(spec: PipelineSpec, shown: str, root: Path) -> None:
    seen: list[str] = []
    for stage in spec.stages:
        if stage.name in seen:
            raise PipelineError(f"{shown}: stage '{stage.name}' appears twice")
        if not (root / stage.notebook).is_file():
            raise PipelineError(f"{shown}: stage {stage.name}: notebook {stage.notebook} does not exist")
        for need in stage.needs:
            if need not in seen:
                raise PipelineError(
                    f"{shown}: stage {stage.name} needs '{need}', which is not an earlier stage ({', '.join(seen) or 'none'})"
                )
        unknown = [r for r in stage.reads if r not in _readable()]
        if unknown:
            raise PipelineError(f"{shown}: stage {stage.name}: reads: unknown '{unknown[0]}'; a params section "
                                f"({', '.join(_readable()[:-1])}) or champion")
        seen.append(stage.name)


def _readable() -> list[str]:
    """What a stage may declare under ``reads:``: a top-level params section, or the champion."""
    from modelfactory.schema import Params

    return list(Params.model_fields) + ["champion"]


def select_stages(spec: PipelineSpec, wanted: list[str] | None) -> list[str]:
    """The stages to run, in pipeline order; all of them when ``wanted`` is empty."""
    if not wanted:
        return spec.names
    unknown = [w for w in wanted if w not in spec.names]
    if unknown:
        raise PipelineError(f"--stages: unknown stage '{unknown[0]}'; {spec.name} has {', '.join(spec.names)}")
    return [n for n in spec.names if n in wanted]
