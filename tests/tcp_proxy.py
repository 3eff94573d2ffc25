"""A TCP proxy on loopback that a test can cut: the database "unreachable" without touching
the database (tests/ha). `cut()` closes every proxied connection and stops listening, so a
client sees its connection drop and new connections refused; `restore()` listens again on the
same port. `drop()` keeps every connection open but silently discards what flows through it
(a network partition that sends no reset: the client only notices by its own timeouts);
`restore()` then closes those connections, whose protocol streams lost data.
`upstream_ports()`: the local ports of the proxy's upstream sockets (PostgreSQL's
`pg_stat_activity.client_port` of the proxied clients)."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._dropping = threading.Event()
        self.port = 0
        self._listen()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: cut() or close()
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self._dropping.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        # shutdown wakes the thread blocked in accept(); close alone would not, and the
        # kernel socket would go on accepting
        self.refuse()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def refuse(self) -> None:
        """Refuse new connections; the open ones go on."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None

    def drop(self) -> None:
        """Discard all traffic from now on, without closing or refusing anything."""
        self._dropping.set()

    def upstream_ports(self) -> list[int]:
        with self._lock:
            conns = list(self._conns)
        ports = []
        for s in conns[1::2]:  # appended as (client, upstream) pairs
            with contextlib.suppress(OSError):
                ports.append(int(s.getsockname()[1]))
        return ports

    def restore(self) -> None:
        if self._dropping.is_set():
            self._dropping.clear()
            self.cut()  # the dropped connections' streams are broken: close them
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self.cut()


__all__ = ["TcpProxy"]
