"""The "container" of the network tests: a TCP echo server, told what to do on stdin.

    python3 net_container.py PORT [--ignore-term]

(--ignore-term: SIGTERM ignored, and the end of stdin is no reason to exit.)

Listens on 0.0.0.0:PORT, prints "listening PID", then answers each
connection: it echoes what it reads and, at the client's end-of-file, sends
"bye" and closes (so that a half-close can be seen both ways). It exits 0 at
the end of stdin; lines on stdin:

    exit N              exit with status N at once, connections open or not
    fetch HOST PORT     connect to HOST:PORT, send "hello", print "fetched <answer>"
"""
import os
import signal
import socket
import sys
import threading


def serve(conn):
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
        conn.sendall(b"bye")


def accept_forever(server):
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def fetch(host, port):
    try:
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(b"hello")
            conn.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        return answer.decode(errors="replace")
    except OSError as error:
        return f"error {error}"


def main():
    port = int(sys.argv[1])
    if "--ignore-term" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(128)
    threading.Thread(target=accept_forever, args=(server,), daemon=True).start()
    print(f"listening {os.getpid()}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["exit"]:
            os._exit(int(words[1]))
        if words[:1] == ["fetch"]:
            print(f"fetched {fetch(words[1], words[2])}", flush=True)
    if "--ignore-term" in sys.argv:  # a stubborn container: only SIGKILL ends it
        threading.Event().wait()
    os._exit(0)


main()
