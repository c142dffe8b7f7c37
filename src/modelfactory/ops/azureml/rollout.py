"""Blue/green rollout on a managed online endpoint, through an MLClient (the specs are deployment.py's).

Tests hand in a fake client at that boundary, as they do for submit.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from modelfactory.errors import AzureSpecError, ModelfactoryError
from modelfactory.ops.azureml.deployment import COLOURS, EndpointSpecs, check_traffic


def shifted(to: str) -> dict[str, int]:
    """New live traffic for ``shift --to green=N`` (the other colour takes the rest)."""
    colour, _, share = to.partition("=")
    if colour not in COLOURS or not share.isdigit() or not 0 <= int(share) <= 100:
        raise AzureSpecError(f"--to {to}: expected blue=N or green=N with N from 0 to 100")
    other = COLOURS[1 - COLOURS.index(colour)]
    return {colour: int(share), other: 100 - int(share)}


class EndpointRollout:
    """Blue/green on a managed online endpoint, through an MLClient.

    Blue serves the live model; green takes each new one. ``deploy`` puts the package on green
    (and on blue as well when the endpoint is new), then applies the params' traffic split;
    ``shift`` moves live traffic; ``promote`` puts green's model on blue and sends blue everything;
    ``rollback`` sends blue everything and green nothing; ``smoke`` sends the package's sample request
    to green alone; ``batch`` creates or updates the batch endpoint and makes its deployment the default.
    """

    def __init__(self, client, specs: EndpointSpecs, say=print):
        self.client, self.specs, self.say = client, specs, say
        self.name = specs.online_endpoint.name

    def _current(self):
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.client.online_endpoints.get(self.name)
        except ResourceNotFoundError:
            return None

    def _set_traffic(self, traffic: Mapping[str, int], mirror: Mapping[str, int] | None = None):
        check_traffic(traffic, mirror or {})
        endpoint = self._current()
        if endpoint is None:
            raise ModelfactoryError(f"endpoint {self.name} does not exist yet; run `modelfactory endpoint deploy` first")
        endpoint.traffic = dict(traffic)
        endpoint.mirror_traffic = dict(mirror or {})
        self.client.online_endpoints.begin_create_or_update(endpoint).result()
        self.say(f"{self.name}: traffic " + ", ".join(f"{c}={p}%" for c, p in traffic.items())
                 + ("" if not mirror else "; mirrored " + ", ".join(f"{c}={p}%" for c, p in mirror.items())))
        return endpoint

    def deploy(self):
        endpoint = self._current()
        if endpoint is None:
            fresh = self.specs.online_endpoint
            live = {"traffic": fresh.traffic, "mirror": fresh.mirror_traffic}
            fresh.traffic, fresh.mirror_traffic = {}, {}
            self.say(f"creating endpoint {self.name} ...")
            self.client.online_endpoints.begin_create_or_update(fresh).result()
            fresh.traffic, fresh.mirror_traffic = live["traffic"], live["mirror"]
            colours = COLOURS
        else:
            colours = ("green",)
        for colour in colours:
            self.say(f"deploying {colour} ({self.specs.deployments[colour].tags.get('model_version')}) ...")
            self.client.online_deployments.begin_create_or_update(self.specs.deployments[colour]).result()
        return self._set_traffic(self.specs.online_endpoint.traffic, self.specs.online_endpoint.mirror_traffic)

    def shift(self, to: str):
        return self._set_traffic(shifted(to))

    def promote(self):
        green = self.client.online_deployments.get(name="green", endpoint_name=self.name)
        blue = self.specs.deployments["blue"]
        blue.model, blue.tags = green.model, {**blue.tags, **(green.tags or {})}
        self.say(f"putting green's model on blue ({(green.tags or {}).get('model_version', '?')}) ...")
        self.client.online_deployments.begin_create_or_update(blue).result()
        return self._set_traffic({"blue": 100, "green": 0})

    def rollback(self):
        return self._set_traffic({"blue": 100, "green": 0})

    def smoke(self, request_file: Path) -> list:
        """Send the sample request to the green deployment alone; its predictions, one per row sent.

        Raises ModelfactoryError (exit 1) when the answer is not that: CI then rolls back.
        """
        rows = len(json.loads(Path(request_file).read_text())["input_data"]["data"])
        self.say(f"{self.name}: smoke test, {rows} row(s) of {Path(request_file).name} to green ...")
        reply = self.client.online_endpoints.invoke(endpoint_name=self.name, deployment_name="green",
                                                    request_file=str(request_file))
        try:
            answer = json.loads(reply)
            if isinstance(answer, str):  # the inference server may send the JSON text as a JSON string
                answer = json.loads(answer)
            predictions = answer["predictions"]
        except (TypeError, ValueError, KeyError):
            raise ModelfactoryError(f"{self.name}: smoke test failed: green answered {str(reply)[:200]!r}, "
                                    "not {\"predictions\": [...]}") from None
        if not isinstance(predictions, list) or len(predictions) != rows:
            raise ModelfactoryError(f"{self.name}: smoke test failed: {rows} row(s) sent, green answered "
                                    f"{str(predictions)[:200]}")
        self.say(f"{self.name}: smoke test passed: green answered {predictions}")
        return predictions

    def batch(self):
        """Create or update the batch endpoint and its deployment, and make that deployment the default."""
        endpoint, deployment = self.specs.batch_endpoint, self.specs.batch_deployment
        self.say(f"batch endpoint {endpoint.name}: creating or updating ...")
        self.client.batch_endpoints.begin_create_or_update(endpoint).result()
        self.client.batch_deployments.begin_create_or_update(deployment).result()
        live = self.client.batch_endpoints.get(endpoint.name)
        # A dict is what azure-ai-ml turns into the REST defaults; a fetched endpoint may hold None there.
        live.defaults = {"deployment_name": deployment.name}
        self.client.batch_endpoints.begin_create_or_update(live).result()
        self.say(f"batch endpoint {endpoint.name}: default deployment {deployment.name} "
                 f"({deployment.tags.get('model_version', '?') if deployment.tags else '?'})")
        return live
