"""Checks of our own on the generated pipeline YAML, for mistakes azure-ai-ml's validation lets through.

azure-ai-ml validates each component and the pipeline's shape, but (as of 1.35) it passes:
- a command that names ``${{inputs.x}}`` or ``${{outputs.x}}`` the component does not declare;
- a required input that no binding feeds;
- a binding to a step or output that does not exist (e.g. ``${{parent.jobs.None.outputs.run}}``,
  which a node bound before it was named produces);
- a ``uri_folder`` output wired into a ``uri_file`` input;
- a pipeline input whose local path was written as an asset reference (``azureml:/home/...``).
Each problem is one line naming the step and the input or output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

REFERENCE = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_]+)\s*\}\}")
BINDING = re.compile(r"^\$\{\{\s*parent\.jobs\.([^.\s]+)\.outputs\.([A-Za-z0-9_]+)\s*\}\}$")
ASSET_REFERENCE = re.compile(r"^azureml:(//.+|[A-Za-z0-9][A-Za-z0-9_.-]*(:[A-Za-z0-9_.-]+|@[A-Za-z0-9_.-]+))$")
PARENT_INPUT = re.compile(r"^\$\{\{\s*parent\.inputs\.([A-Za-z0-9_]+)\s*\}\}$")


def _type(spec) -> str | None:
    return spec.get("type") if isinstance(spec, Mapping) else None


def check_pipeline(pipeline: Mapping) -> list[str]:
    """Every problem found in a pipeline job as loaded from its YAML (a dict); empty when none."""
    problems = []
    jobs = pipeline.get("jobs") or {}
    parent_inputs = pipeline.get("inputs") or {}
    for name, spec in parent_inputs.items():
        path = spec.get("path") if isinstance(spec, Mapping) else None
        if isinstance(path, str) and path.startswith("azureml:") and not ASSET_REFERENCE.match(path):
            problems.append(f"pipeline input '{name}': path {path} is neither azureml:<name>:<version>, "
                            "azureml:<name>@<label> nor an azureml:// URI (a local path written as an asset?)")
    for step, node in jobs.items():
        component = node.get("component")
        if not isinstance(component, Mapping):
            continue  # a component referenced by name or file: checked when that file is loaded
        declared_in = component.get("inputs") or {}
        declared_out = component.get("outputs") or {}
        for kind, name in REFERENCE.findall(component.get("command", "")):
            if name not in (declared_in if kind == "inputs" else declared_out):
                problems.append(f"step {step}: its command uses ${{{{{kind}.{name}}}}}, which the component "
                                f"does not declare")
        bound = node.get("inputs") or {}
        for name, spec in declared_in.items():
            optional = isinstance(spec, Mapping) and (spec.get("optional") or "default" in spec)
            if name not in bound and not optional:
                problems.append(f"step {step}: required input '{name}' is not connected")
        for name, value in bound.items():
            if name not in declared_in:
                problems.append(f"step {step}: binds input '{name}', which the component does not declare")
                continue
            path = value.get("path") if isinstance(value, Mapping) else value
            if not isinstance(path, str):
                continue
            wanted = _type(declared_in[name])
            match = BINDING.match(path)
            if match:
                source, output = match.groups()
                if source not in jobs:
                    problems.append(f"step {step}: input '{name}' is bound to step '{source}', which the "
                                    "pipeline does not have")
                    continue
                source_component = jobs[source].get("component")
                outputs = (source_component or {}).get("outputs") or {} if isinstance(source_component, Mapping) else None
                if outputs is not None and output not in outputs:
                    problems.append(f"step {step}: input '{name}' is bound to {source}.outputs.{output}, which "
                                    f"step {source} does not produce")
                    continue
                given = _type(outputs.get(output)) if outputs else None
                if wanted and given and wanted != given:
                    problems.append(f"step {step}: input '{name}' takes {wanted} but {source}.outputs.{output} "
                                    f"is {given}")
                continue
            match = PARENT_INPUT.match(path)
            if match and match.group(1) not in parent_inputs:
                problems.append(f"step {step}: input '{name}' is bound to pipeline input '{match.group(1)}', "
                                "which the pipeline does not declare")
    return problems
