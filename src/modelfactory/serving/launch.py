"""Start the Azure ML inference server (azmlinfsrv) on a chosen interface.

The server's own command binds 0.0.0.0; this launcher runs the same server (gunicorn with the
server's Flask app) on the host we choose, 127.0.0.1 unless asked otherwise. The entry script and
model come from AZUREML_ENTRY_SCRIPT and AZUREML_MODEL_DIR, as in Azure ML.

    python -m modelfactory.serving.launch --host 127.0.0.1 --port 5001 --workers 1
"""

import argparse


def main() -> None:
    """Parse the arguments and hand over to the inference server; returns when it stops."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    from azureml_inference_server_http import amlserver_linux

    amlserver_linux.run(args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
