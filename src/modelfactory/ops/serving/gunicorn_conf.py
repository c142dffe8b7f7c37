"""Gunicorn settings for the Azure ML inference server that serves this package.

Copied as-is into every package, next to score.py. Gunicorn reads ``gunicorn.conf.py`` from its
working directory, so the local endpoint (started in the package folder) and the package's
Dockerfile (WORKDIR /package, ``azmlinfsrv``) run with the same settings. Values come from the
``server`` section of ``serving.json`` beside this file, written from ``deploy.endpoint`` params.

Why: azmlinfsrv runs one *sync* gunicorn worker by default. A sync worker serves one connection
at a time and reads it to the end, so a client that connects and sends nothing, or half a
request, holds the only worker until the 300 s worker timeout, and every /score waits. Here:

- a threaded worker (``gthread``): the main thread watches idle and keep-alive connections and
  hands a connection to a thread only once it has data; ``threads`` requests run at once;
- a receive and send timeout on every client socket, so a client that stops half-way through a
  request (or stops reading its answer) loses its thread after ``client_timeout_seconds``
  instead of keeping it for as long as it likes.
"""

import json
import socket
import struct
from pathlib import Path

_settings = json.loads(Path(__file__).with_name("serving.json").read_text()).get("server", {})

worker_class = "gthread"
threads = int(_settings.get("threads", 8))
_client_timeout = float(_settings.get("client_timeout_seconds", 30))


def when_ready(server):
    """Put the client timeout on the listening sockets; Linux copies it to every accepted socket.

    Gunicorn reads requests with blocking socket calls; with SO_RCVTIMEO such a call fails after
    the timeout (gunicorn then closes that connection) instead of waiting for ever.
    """
    seconds = int(_client_timeout)
    value = struct.pack("ll", seconds, int((_client_timeout - seconds) * 1_000_000))
    for listener in server.LISTENERS:
        listener.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        listener.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


def worker_exit(server, worker):
    """End a stopping worker as soon as its own exit work is done, without the interpreter's teardown.

    Gunicorn calls this as the worker process leaves (a graceful stop, a Ctrl-C, a crash), while the
    SystemExit carrying its exit code is in flight. The exit work is the atexit handlers (score.py's
    scored-data writer flushes every queued row there) and the log handlers; what is left after
    them, freeing the modules of pandas, scikit-learn and MLflow one object at a time and joining
    idle threads, took 1.4 s of every stop and changes nothing on disk. The exit code is kept.
    """
    import atexit
    import logging
    import os
    import sys

    leaving = sys.exc_info()[1]
    if not isinstance(leaving, SystemExit):  # not the way gunicorn ends a worker: leave it alone
        return
    code = leaving.code if isinstance(leaving.code, int) else (0 if leaving.code is None else 1)
    atexit._run_exitfuncs()  # the handlers the interpreter would run next, in the same order
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
