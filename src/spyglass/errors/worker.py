"""An ingest worker process: ``python -m spyglass.errors.worker FD`` (see
:mod:`spyglass.errors.offload`).

Reads ``(task_id, Task)`` frames from the socket ``FD``, decodes and parses each request body
and turns its items into rows, and writes ``(task_id, Reply)`` frames back. It has no state
but each project's rules, and exits when the server closes the socket.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import sys

import orjson

from spyglass.errors.envelope import Envelope, EnvelopeError, Item, parse_envelope
from spyglass.errors.items import ItemConfig, process_items
from spyglass.errors.offload import HEADER, MAX_FRAME, Reply, Task
from spyglass.kernel.ingest.decode import BodyError, decode


class Worker:
    def __init__(self) -> None:
        #: project id → its item configuration, built from the rules the server sent.
        self.configs: dict[int, ItemConfig] = {}

    def handle(self, task: Task) -> Reply:
        if task.rules is not None:
            self.configs[task.project_id] = ItemConfig.from_texts(task.rules)
        cfg = self.configs.get(task.project_id)
        if cfg is None:  # cannot happen: the server sends the rules with a project's first task
            return Reply(500, "ingest worker has no rules for this project")
        try:
            body = decode(task.raw, task.encoding, task.limit)
            if task.store:
                event = orjson.loads(body)
                if not isinstance(event, dict):
                    raise EnvelopeError("event must be a JSON object")
                envelope = Envelope({}, [Item({"type": "event"}, body)])
            else:
                envelope = parse_envelope(body)
        except BodyError as exc:
            return Reply(exc.status, exc.message)
        except orjson.JSONDecodeError as exc:
            return Reply(400, f"event is not valid JSON: {exc}")
        except EnvelopeError as exc:
            return Reply(400, str(exc))
        items = process_items(cfg, task.project_id, envelope, task.received)
        return Reply(200, headers=envelope.headers, items=items)


def serve(sock: socket.socket) -> None:
    worker = Worker()
    buf = bytearray()
    while True:
        data = sock.recv(1 << 20)
        if not data:
            return
        buf += data
        # Each reply goes out as soon as it is ready: replies held back until every task that
        # arrived with it was done made the first ones wait for the last (requests arrive in
        # bursts, released together by the writer's group commit), which cost a tenth of the
        # throughput in the ingest benchmark for one send per reply.
        while len(buf) >= HEADER.size:
            (size,) = HEADER.unpack_from(buf)
            if size > MAX_FRAME:
                raise SystemExit("ingest worker: oversized frame")
            if len(buf) < HEADER.size + size:
                break
            task_id, task = pickle.loads(memoryview(buf)[HEADER.size:HEADER.size + size])
            del buf[:HEADER.size + size]
            try:
                reply = worker.handle(task)
            except Exception as exc:  # noqa: BLE001 -- a bug must not take the worker down
                reply = Reply(500, f"ingest worker failed: {exc!r}"[:300])
            frame = pickle.dumps((task_id, reply), protocol=pickle.HIGHEST_PROTOCOL)
            sock.sendall(HEADER.pack(len(frame)) + frame)


def main() -> None:
    # The server stops workers itself; Ctrl-C in a terminal goes to the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(sys.argv[1]))
    sock.setblocking(True)
    try:
        serve(sock)
    except (ConnectionError, OSError):
        pass
    finally:
        sock.close()
        os._exit(0)


if __name__ == "__main__":
    main()
