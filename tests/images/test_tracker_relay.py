"""The tracker relay: hosts that dial the agreed port reach a tracker XGBoost 2.1 bound elsewhere."""

from __future__ import annotations

import socket
import threading

from sagemaker_emulator.images.xgboost_algorithm.relay import Relay


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_relay_pipes_both_ways_and_passes_the_close_on() -> None:
    target = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def tracker() -> None:  # echoes upper-cased, then sees the client's close as EOF
        conn, _ = target.accept()
        with conn:
            while data := conn.recv(1024):
                received.append(data)
                conn.sendall(data.upper())

    thread = threading.Thread(target=tracker, daemon=True)
    thread.start()
    agreed = free_port()
    relay = Relay(agreed, target.getsockname()[1])
    try:
        with socket.create_connection(("127.0.0.1", agreed), timeout=5) as client:
            client.sendall(b"start")
            assert client.recv(1024) == b"START"
            client.shutdown(socket.SHUT_WR)
            assert client.recv(1024) == b""  # the tracker closed after our EOF reached it
        thread.join(5)
        assert b"".join(received) == b"start" and not thread.is_alive()
    finally:
        relay.close()
        target.close()


def test_closed_relay_refuses_new_connections() -> None:
    target = socket.create_server(("127.0.0.1", 0))
    agreed = free_port()
    Relay(agreed, target.getsockname()[1]).close()
    try:
        socket.create_connection(("127.0.0.1", agreed), timeout=2).close()
        refused = False
    except ConnectionRefusedError:
        refused = True
    finally:
        target.close()
    assert refused
