"""Start the Azure ML inference server (azmlinfsrv) on a chosen interface.

The server's own command binds 0.0.0.0; this launcher runs the same server (gunicorn with the
server's Flask app) on the host we choose, 127.0.0.1 unless asked otherwise. The entry script and
model come from AZUREML_ENTRY_SCRIPT and AZUREML_MODEL_DIR, as in Azure ML. Gunicorn's settings
come from the package's gunicorn.conf.py (the working directory).

    python -m modelfactory.ops.serving.launch --host 127.0.0.1 --port 5001 --workers 1 [--lifeline FD]

With ``--lifeline FD`` the server stops when FD, the read end of a pipe whose write end only the
starting process holds, reaches end-of-file: that is, when the starting process ends, however it
ends (even SIGKILL, when no code of its own runs).
"""

import argparse
import os
import signal
import threading


def stop_with_parent(fd: int) -> threading.Thread:
    """Send ourselves SIGTERM (gunicorn's graceful stop, workers included) once ``fd`` reads EOF.

    A pipe rather than Linux's parent-death signal: that fires when the *thread* that started us
    ends, and a server started from a short-lived thread would die with it.
    """
    def watch() -> None:
        while os.read(fd, 1):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="lifeline", daemon=True)
    thread.start()
    return thread


def main() -> None:
    """Parse the arguments and hand over to the inference server; returns when it stops."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--lifeline", type=int, help="stop when this file descriptor reads end-of-file")
    args = parser.parse_args()
    if args.lifeline is not None:
        stop_with_parent(args.lifeline)
    from azureml_inference_server_http import amlserver_linux

    amlserver_linux.run(args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
