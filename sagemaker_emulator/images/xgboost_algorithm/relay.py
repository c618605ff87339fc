"""A TCP relay from the tracker port the hosts agreed on to the port XGBoost's tracker really listens on.

Why: the hosts of a distributed job find the first tracker at a port fixed in advance (the
container's 9099, here ``SM_EMULATOR_TRACKER_PORT``). XGBoost 3 binds its ``RabitTracker`` to the
port it is given; XGBoost 2.1's binds to whatever port the OS picks and ignores the one asked for.
Jobs run with 2.1 where the Studio kernel's environment serves them (SageMaker Distribution pins
it), so there the master listens on the agreed port itself and pipes every connection to the
tracker. The tracker sees its workers connect from 127.0.0.1, which is where every emulated host is.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

logger = logging.getLogger(__name__)

LOCAL_HOST_IP = "127.0.0.1"
_CHUNK = 65536


class Relay:
    """Accept on ``listen_port`` and pipe each connection, both ways, to ``target_port`` (both on 127.0.0.1)."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.create_server((LOCAL_HOST_IP, listen_port), reuse_port=False)
        self._closed = threading.Event()
        threading.Thread(target=self._accept_loop, name="tracker-relay", daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection((LOCAL_HOST_IP, self.target_port))
            except OSError:
                logger.debug("tracker on port %s refused a relayed connection", self.target_port, exc_info=True)
                client.close()
                continue
            threading.Thread(target=_relay, args=(client, upstream), name="tracker-relay", daemon=True).start()

    def close(self) -> None:
        """Stop accepting; connections already relayed run until either side closes them."""
        self._closed.set()
        with contextlib.suppress(OSError):  # close() alone leaves a socket that a thread blocks in accept() on
            self._server.shutdown(socket.SHUT_RDWR)  # listening (Linux): shutdown wakes it and stops listening
        self._server.close()


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Pipe both ways until both sides have closed, then free both sockets."""
    back = threading.Thread(target=_pipe, args=(upstream, client), name="tracker-relay-back", daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy until ``source`` ends, then end ``sink``'s sending side so its peer sees the close."""
    try:
        while chunk := source.recv(_CHUNK):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
