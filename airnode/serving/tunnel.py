"""A local HTTP address for a port on the node, through an SSH connection that is already open
(a ``direct-tcpip`` channel per connection, what ``ssh -L`` does). The deploy's health check uses
pyinfra's own connection, so the node's ports need not be reachable from the control machine:
only its sshd (with AllowTcpForwarding, OpenSSH's default). No pyinfra here: give it a paramiko
Transport.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class TunnelError(RuntimeError):
    pass


def _pump(src, dst) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for end in (src, dst):
            with contextlib.suppress(Exception):
                end.close()


@contextlib.contextmanager
def forward(transport, dest_host: str, dest_port: int) -> Iterator[str]:
    """Yield http://127.0.0.1:PORT that reaches dest_host:dest_port as seen from the SSH server.

    A refused channel (forwarding disabled in sshd, nothing listening) closes the local
    connection; the reason is kept and raised as TunnelError when the block ends with an error.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    errors: list[str] = []

    def serve() -> None:
        while True:
            try:
                client, peer = listener.accept()
            except OSError:
                return
            try:
                channel = transport.open_channel("direct-tcpip", (dest_host, dest_port), peer)
            except Exception as e:  # paramiko raises several kinds
                errors.append(f"{e.__class__.__name__}: {e}")
                client.close()
                continue
            threading.Thread(target=_pump, args=(client, channel), daemon=True).start()
            threading.Thread(target=_pump, args=(channel, client), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    except Exception as e:
        if errors:
            raise TunnelError(
                f"SSH forwarding to {dest_host}:{dest_port} on the node failed "
                f"({errors[-1]}): is AllowTcpForwarding off in its sshd, or is "
                "nothing listening there?"
            ) from e
        raise
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() so its thread ends
        listener.close()
        thread.join(5)
