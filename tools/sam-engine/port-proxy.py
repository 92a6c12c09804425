#!/usr/bin/env python3
"""Docker's userland proxy for the dockerd that scripts/sam-engine starts (its
--userland-proxy-path). It publishes a container's TCP port as Docker's own docker-proxy
does, with one difference: a connection that arrives before anything listens inside the
container is held until the container's port accepts (up to PORT_PROXY_WAIT seconds,
default 20), then relayed both ways. Docker's proxy closes such a connection at once.

Why: `sam local invoke` first waits until the published port takes a TCP connection (up to
SAM_CLI_CONTAINER_CONNECTION_TIMEOUT), then posts the event three times within about 0.7 s
and gives up with "No response from invoke container". Docker's proxy takes the
connection at once, so SAM's wait ends before the runtime interface emulator inside has
started; under QEMU on a slow machine the emulator needs longer than those 0.7 s
(docs/local-invoke.md section 4). With this proxy the first post waits for the emulator.

Called by dockerd as docker-proxy is (Docker 20.10):

    port-proxy.py -proto tcp -host-ip IP -host-port N -container-ip IP -container-port N

with the write end of a pipe as fd 3, on which it answers "0\\n" once it listens, or "1\\n"
and the reason. Any other protocol, or a flag it does not know, is handed to Docker's own
proxy (DOCKER_PROXY, default /usr/sbin/docker-proxy) unchanged. dockerd stops it with
SIGTERM. It logs nothing: the bytes it relays are API requests and their keys.
"""

import os
import socket
import sys
import threading
import time

DOCKER_PROXY = os.environ.get("DOCKER_PROXY", "/usr/sbin/docker-proxy")
WAIT = float(os.environ.get("PORT_PROXY_WAIT", "20"))
RETRY_EVERY = 0.05
FLAGS = {"-proto", "-host-ip", "-host-port", "-container-ip", "-container-port"}


def parse(argv):
    """The flags as a dict, or None when there is one this proxy does not know."""
    args, i = {}, 0
    while i < len(argv):
        flag = argv[i]
        if flag not in FLAGS or i + 1 >= len(argv):
            return None
        args[flag[1:]] = argv[i + 1]
        i += 2
    return args if len(args) == len(FLAGS) else None


def report(message):
    """Tells dockerd on fd 3 that the port is published ("0") or why it is not."""
    try:
        os.write(3, b"0\n" if message is None else b"1\n" + message.encode())
        os.close(3)
    except OSError:
        pass  # not started by dockerd (fd 3 closed): nothing to tell


def family(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def connect_when_listening(address):
    """A connection to the container's port, retried until it accepts or WAIT is over."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return socket.create_connection(address, timeout=5)
        except OSError:
            if time.monotonic() >= deadline:
                return None
            time.sleep(RETRY_EVERY)


def pump(source, sink):
    """Copies one direction until its end, then passes the end on (a half close)."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def relay(client, container):
    upstream = connect_when_listening(container)
    if upstream is None:
        client.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def main():
    args = parse(sys.argv[1:])
    if args is None or args["proto"] != "tcp":
        os.execv(DOCKER_PROXY, [DOCKER_PROXY, *sys.argv[1:]])
    host = (args["host-ip"], int(args["host-port"]))
    container = (args["container-ip"], int(args["container-port"]))
    try:
        listener = socket.socket(family(host[0]), socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if listener.family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        listener.bind(host)
        listener.listen(128)
    except OSError as err:
        report(f"listen tcp {host[0]}:{host[1]}: {err.strerror or err}")
        sys.exit(1)
    report(None)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=relay, args=(client, container), daemon=True).start()


if __name__ == "__main__":
    main()
