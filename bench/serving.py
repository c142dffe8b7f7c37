"""Benchmark: the packaged scoring script on the Azure ML inference server, against a bare one.

Side by side in one run, on the same model and the same server: our score.py (request checks,
scored-data logging) and a bare score.py that only calls model.predict. Then batch scoring against
a plain model.predict over the same file, and batch scoring's peak memory on a file 10x larger.
The load generator talks only to 127.0.0.1 and is bounded in request count and time.

    .venv/bin/python bench/serving.py [--requests 2000]
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

BARE_SCORE = '''
import json, os
from pathlib import Path
import pandas as pd
import mlflow.pyfunc

def init():
    global model
    model = mlflow.pyfunc.load_model(str(next(Path(os.environ["AZUREML_MODEL_DIR"]).rglob("MLmodel")).parent))

def run(raw_data):
    body = json.loads(raw_data)["input_data"]
    return {"predictions": model.predict(pd.DataFrame(body["data"], columns=body["columns"])).tolist()}
'''
TIME_LIMIT_S = 120  # per load phase: the generator stops at the count or at this, whichever first


def params_endpoint() -> dict:
    """The project's deploy.endpoint params (threads, client timeout): every package here, the bare
    one included, is written by packaging.package_model with them, so all three servers run the same
    gunicorn.conf.py (one gthread worker with the same threads and timeouts) and the comparison is
    of the scoring scripts alone."""
    from modelfactory.params import resolve

    return resolve("diabetes", "dev")["deploy"]["endpoint"]


def build_packages(base: Path):
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    from modelfactory.core import contract
    from modelfactory.ops.serving import packaging

    frame = load_diabetes(as_frame=True).frame
    x = frame.drop(columns="target")
    model = Ridge().fit(x, frame["target"])
    rules = contract.fit_to_model(contract.infer_contract(x), model)  # as the train stage logs it
    mlflow.sklearn.save_model(model, base / "model", signature=infer_signature(x, model.predict(x)),
                              pip_requirements=["scikit-learn"], metadata={contract.METADATA_KEY: contract.to_json(rules)})
    settings = {"max_rows": 1000, "base_image": "python:3.11-slim",
                "endpoint": params_endpoint(),
                "scored_data": {"enabled": True, "flush_rows": 5000, "flush_seconds": 1.0}}
    packaging.package_model(base / "model", base / "ours", x, settings, "bench", "1")
    packaging.package_model(base / "model", base / "bare", x, settings, "bench", "1")
    (base / "bare" / "score.py").write_text(BARE_SCORE)
    quiet = {**settings, "scored_data": {**settings["scored_data"], "enabled": False}}
    packaging.package_model(base / "model", base / "nolog", x, quiet, "bench", "1")
    return x, model


def load(port: int, body: bytes, count: int, concurrency: int) -> tuple[float, list[float]]:
    """Send ``count`` requests over ``concurrency`` keep-alive connections; (requests/s, latencies ms)."""
    latencies, lock, sent = [], threading.Lock(), [0]
    deadline = time.monotonic() + TIME_LIMIT_S

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < deadline:
            with lock:
                if sent[0] >= count:
                    break
                sent[0] += 1
            start = time.perf_counter()
            conn.request("POST", "/score", body, {"Content-Type": "application/json"})
            reply = conn.getresponse()
            reply.read()
            elapsed = (time.perf_counter() - start) * 1000
            if reply.status != 200:
                raise RuntimeError(f"HTTP {reply.status}")
            with lock:
                latencies.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - start), latencies


def serving(base: Path, x, requests: int, rounds: int) -> None:
    """All three servers up at once (idle ones cost nothing); rounds alternate them; medians compared."""
    from modelfactory.ops.serving import packaging
    from modelfactory.ops.serving.endpoint import start_endpoint

    bodies = {"1 row": json.dumps(packaging.build_request(x.head(1))).encode(),
              "1000 rows": json.dumps(packaging.build_request(x.sample(1000, replace=True, random_state=0))).encode()}
    names = ("bare", "ours", "nolog")
    os.environ["MODELFACTORY_SCORED_DIR"] = str(base / "scored")
    endpoints = {name: start_endpoint(base / name) for name in names}
    samples = {(n, label): [] for n in names for label in bodies}
    try:
        for endpoint in endpoints.values():
            endpoint.wait_until_healthy(180)
            load(endpoint.port, bodies["1 row"], 200, 1)  # warm-up
        for _ in range(rounds):
            for label, body in bodies.items():
                n = requests if label == "1 row" else max(requests // 10, 50)
                for name in names:
                    _, lat = load(endpoints[name].port, body, n, 1)
                    rps, _ = load(endpoints[name].port, body, n, 4)
                    samples[(name, label)].append((rps, np.percentile(lat, 50), np.percentile(lat, 99)))
    finally:
        for endpoint in endpoints.values():
            endpoint.stop()
    results = {key: tuple(statistics.median(v[i] for v in runs) for i in range(3)) for key, runs in samples.items()}
    server = params_endpoint()
    print(f"serving (Azure ML inference server, 1 gthread worker with {server['threads']} threads each, the "
          f"same gunicorn.conf.py, 127.0.0.1; medians of {rounds} alternating rounds)")
    print(f"  {'':10} {'':6} {'req/s (4 conns)':>16} {'p50 ms':>8} {'p99 ms':>8}")
    for label in bodies:
        for name in names:
            rps, p50, p99 = results[(name, label)]
            print(f"  {label:10} {name:6} {rps:16.0f} {p50:8.2f} {p99:8.2f}")
        ratio = results[("ours", label)][0] / results[("bare", label)][0]
        print(f"  {label:10} throughput ours/bare {ratio:.2f}x (target >= 0.9x)")
    print(f"  1-row p99 {results[('ours', '1 row')][2]:.2f} ms (target <= 5 ms; the bare server's own: "
          f"{results[('bare', '1 row')][2]:.2f} ms, this machine's floor)")
    print("  (nolog: our score.py with scored-data logging off, to show what logging costs)")


RSS_CODE = '''
import resource, sys
from pathlib import Path
from modelfactory.core.batch import score_file
score_file(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), {"chunk_rows": 20000, "on_bad_rows": "skip"}, progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
'''


def batch(base: Path, x, model) -> None:
    import mlflow.sklearn
    import pandas as pd

    from modelfactory.core.batch import score_file

    big = pd.concat([x] * 230, ignore_index=True)  # ~100k rows
    big.to_parquet(base / "small.parquet")
    pd.concat([big] * 10, ignore_index=True).to_parquet(base / "large.parquet")
    start = time.perf_counter()
    score_file(base / "model", base / "small.parquet", base / "out.parquet",
               {"chunk_rows": 20000, "on_bad_rows": "skip"}, progress=False)
    ours = time.perf_counter() - start
    start = time.perf_counter()  # plain loads the saved model too: score_file does, and so would any script
    mlflow.sklearn.load_model(str(base / "model")).predict(pd.read_parquet(base / "small.parquet"))
    plain = time.perf_counter() - start
    rss = {}
    for name in ("small", "large"):
        done = subprocess.run([sys.executable, "-c", RSS_CODE, str(base / "model"), str(base / f"{name}.parquet"),
                               str(base / f"rss-{name}.parquet")], capture_output=True, text=True, check=True)
        rss[name] = int(done.stdout.strip().splitlines()[-1]) / 1024
    rows = len(big)
    print("batch scoring")
    print(f"  {rows} rows: modelfactory score {rows / ours:,.0f} rows/s, plain load+read+predict {rows / plain:,.0f} "
          f"rows/s ({plain / ours:.2f}x of plain; bench/data.py measures 2 million rows)")
    print(f"  peak RSS: {rows:,} rows {rss['small']:.0f} MiB, {rows * 10:,} rows {rss['large']:.0f} MiB "
          f"-> {rss['large'] / rss['small']:.2f}x for a 10x file (target < 1.2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)  # single rounds swing by a third here
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelfactory-bench-serving-") as scratch:
        base = Path(scratch)
        x, model = build_packages(base)
        serving(base, x, args.requests, args.rounds)
        batch(base, x, model)


if __name__ == "__main__":
    main()
