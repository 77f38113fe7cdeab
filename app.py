"""The chat UI and the JSON API: `python app.py [--host H] [--port P] [--index DIR] [--corpus DIR] [--workers N]`.

Builds the index first if it is missing or stale, then serves on http://127.0.0.1:7860, answering in one
worker process per core (qa.engine; docs/SERVING.md).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading

from qa.cli import set_offline_env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Chat with a bot that answers by quoting its corpus.")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860; 0: any free port)")
    p.add_argument("--index", default="index", help="index folder (default: index)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes answering the chat and the JSON API, each loading the index (~550 MB each "
                        "with the default model; default: one per core; 0: this process's threads)")
    p.add_argument("--corpus", default=None,
                   help="corpus folder to check the index against and build it from "
                        "(default: the one the index was built from, else corpus)")
    args = p.parse_args(argv)

    set_offline_env()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("qa").setLevel(logging.INFO)

    # Gradio's file cache goes to a folder of this process (read when gradio is imported), removed on
    # exit, instead of a /tmp/gradio shared by every Gradio app on the machine and never cleaned.
    cache = tempfile.mkdtemp(prefix="qa-gradio-")
    os.environ["GRADIO_TEMP_DIR"] = cache
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so that a plain `kill` also removes it
    try:
        return serve(args)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def serve(args: argparse.Namespace) -> int:
    from qa import QAError
    from qa import api, engine, server, ui

    workers = engine.default_workers() if args.workers is None else args.workers
    if workers < 0:
        print(f"error: --workers {workers}: give 0 (answer in this process) or more processes", file=sys.stderr)
        return 1
    try:  # a port that is taken or a host that is not ours is said at once, before any worker loads
        server.bindable_port(args.host, args.port)
    except OSError as e:
        print(f"error: cannot serve on {args.host}:{args.port}: {e} — {_fix(e)}", file=sys.stderr)
        return 1
    # Importing gradio (~2 s) and loading the index (~0.4 s, much of it in onnxruntime and faiss,
    # which release the GIL) overlap: the first HTTP 200 comes that much sooner.
    importer = threading.Thread(target=server.import_gradio, daemon=True)
    importer.start()
    try:
        if workers:  # checked (built if it must be) here, loaded by each worker: this process holds no model
            server.ensure_index(args.index, args.corpus)
            answers = engine.Engine(index_dir=args.index, workers=workers, log_level=logging.INFO)
        else:
            bot = server.load_or_build(args.index, args.corpus)
            answers = engine.Engine(server.Reloader(bot, args.index), args.index)
    except QAError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    importer.join()
    try:
        demo = ui.build_demo(answers)
        logging.getLogger("qa.app").info("serving %s/ with %s", args.index,
                                         f"{workers} worker process{'es' if workers > 1 else ''}" if workers else "this process's threads")
        server.launch(demo, host=args.host, port=args.port, api=api.build_api(answers),
                      jobs=engine.capacity(workers), css=ui.CSS)
    except OSError as e:  # the port is taken, or the host is not an address of this machine
        print(f"error: cannot serve on {args.host}:{args.port}: {e} — {_fix(e)}", file=sys.stderr)
        return 1
    except QAError as e:  # the workers could not load the index
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        answers.close()
    return 0


def _fix(error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return "another program listens on that port: pass another --port (--port 0 takes any free one)"
    if error.errno == errno.EADDRNOTAVAIL or isinstance(error, socket.gaierror):
        return "that is not an address of this machine: pass --host 127.0.0.1 (or one of its own addresses)"
    return "pass another --host or --port"


if __name__ == "__main__":
    sys.exit(main())
