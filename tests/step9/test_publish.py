"""Step 9: -p [IP:]HOSTPORT:CONTAINERPORT publishes a container's TCP port on the host, through a
proxy in the waiting runtime (as docker-proxy does), in every mode, rootless too; and the
runtime, now an event loop, keeps the exit status, the signals and the stop timeout of steps 1-8.

The "host" is a sandbox network namespace; its ports are the ones published.
"""

import signal
import time

from networksupport import address_of, http_get, is_up, links_in, listening_in, serve_web, wait_until
from workshop import netsandbox, testing
from workshop.testing import token

PUBLISH = ("-p", "8080:80")


def test_publish_in_none_mode(net, www):
    tag, ready = token("tag"), token("ready")
    with net.popen("run", "-p", "127.0.0.1:8080:80", www.rootfs, "sh", "-c", serve_web(ready, tag)) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        links = links_in(pid)
        page = http_get(net.sandbox, "127.0.0.1", 8080)
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(list(links) == ["lo"] and is_up(links["lo"]), "a container with lo only, up (--network none)",
                 ", ".join(f"{name} {'up' if is_up(link) else 'down'}" for name, link in sorted(links.items())))
    result.check(page == www.word + "\n", "the container's page at http://127.0.0.1:8080/ on the host",
                 repr(page))


def test_publish_in_bridge_mode(net, www):
    """Published on all the host's addresses (0.0.0.0): reached from the host and from outside it."""
    remote = net.sandbox.add_remote()
    tag, ready = token("tag"), token("ready")
    with net.popen("run", "--network", "bridge", *PUBLISH, www.rootfs, "sh", "-c", serve_web(ready, tag)) as c:
        c.wait_for(ready)
        address_of(c.find_process("sh", tag))  # it has its eth0
        local = http_get(net.sandbox, "127.0.0.1", 8080)
        outside = http_get(remote, netsandbox.UPLINK_HOST, 8080)
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(local == www.word + "\n", "the page at http://127.0.0.1:8080/ on the host", repr(local))
    result.check(outside == www.word + "\n", f"the page at http://{netsandbox.UPLINK_HOST}:8080/ from the remote "
                 "machine", repr(outside))


def test_publish_rootless(net, www):
    tag, ready = token("tag"), token("ready")
    with net.popen("run", *PUBLISH, www.rootfs, "sh", "-c", serve_web(ready, tag), as_user=True) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        page = http_get(net.sandbox, "127.0.0.1", 8080)
        owner, inside = testing.status_field(c.pid, "Uid")[1], listening_in(pid)
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(owner == str(testing.ROOTLESS_UID), f"the runtime running as uid {testing.ROOTLESS_UID}", owner)
    result.check(any(s.endswith(":80") for s in inside), "httpd listening in the container's own namespace",
                 sorted(inside))
    result.check(page == www.word + "\n", "the container's page at http://127.0.0.1:8080/, rootless", repr(page))


def test_two_containers_cannot_publish_the_same_host_port(net, www):
    tag, ready = token("tag"), token("ready")
    with net.popen("run", *PUBLISH, www.rootfs, "sh", "-c", serve_web(ready, tag)) as first:
        first.wait_for(ready)
        second = net.run("run", *PUBLISH, www.rootfs, "sh", "-c", serve_web(token("ready"), token("tag")))
        page = http_get(net.sandbox, "127.0.0.1", 8080)
        result = first.finish(input="\n")
    second.expect_error(125, "8080", "in use")
    result.expect_exit(0)
    result.check(page == www.word + "\n", "the first container still serving on 8080", repr(page))


def test_the_published_port_closes_when_the_container_exits(net, www):
    tag, ready = token("tag"), token("ready")
    with net.popen("run", *PUBLISH, www.rootfs, "sh", "-c", serve_web(ready, tag)) as c:
        c.wait_for(ready)
        during = net.sandbox.listening()
        result = c.finish(input="\n")
    result.expect_exit(0)
    after = net.sandbox.listening()
    result.check("0.0.0.0:8080" in during, "0.0.0.0:8080 listening on the host while the container runs",
                 sorted(during))
    result.check(after == set(), "nothing listening on the host once it has exited", sorted(after))
    refused = http_get(net.sandbox, "127.0.0.1", 8080)
    result.check(refused.startswith("error:") and "refused" in refused, "a connection to 8080 refused", refused)


def test_exit_status_with_connections_open(net, www):
    """The container exits while clients are connected: udocker returns its status at once, and the
    clients see their connections end."""
    tag, ready = token("tag"), token("ready")
    with net.popen("run", *PUBLISH, www.rootfs, "sh", "-c", serve_web(ready, tag, then="read line; exit 7")) as c:
        c.wait_for(ready)
        page = http_get(net.sandbox, "127.0.0.1", 8080)
        c.result().check(page == www.word + "\n", "the page through the proxy first", repr(page))
        clients = [net.sandbox.connect(("127.0.0.1", 8080)) for _ in range(3)]
        try:
            begin = time.monotonic()
            result = c.finish(input="\n")
            took = time.monotonic() - begin
            ends = []
            for client in clients:
                client.settimeout(5)
                try:
                    ends.append(client.recv(100))
                except ConnectionResetError:
                    ends.append(b"")
        finally:
            for client in clients:
                client.close()
    result.expect_exit(7)
    result.check(took < 2, "udocker gone within 2 s of its container", f"{took:.2f} s")
    result.check(all(end == b"" for end in ends), "each client's connection ended", ends)


def test_signals_are_forwarded_with_a_proxy_running(net, www):
    tag, ready = token("tag"), token("ready")
    script = f"trap 'exit 42' TERM; {serve_web(ready, tag, then='while :; do sleep 0.1; done')}"
    with net.popen("run", *PUBLISH, www.rootfs, "sh", "-c", script) as c:
        c.wait_for(ready)
        page = http_get(net.sandbox, "127.0.0.1", 8080)
        c.signal(signal.SIGTERM)
        wait_until(lambda: c.proc.poll() is not None, timeout=5)
        result = c.finish()
    result.expect_exit(42)
    result.check(page == www.word + "\n", "the page through the proxy", repr(page))


def test_stop_timeout_with_a_proxy_running(net, www):
    """A PID 1 that ignores SIGTERM is killed UDOCKER_STOP_TIMEOUT seconds later, connections open or not."""
    tag, ready = token("tag"), token("ready")
    script = serve_web(ready, tag, then="while :; do sleep 0.1; done")
    with net.popen("run", *PUBLISH, www.rootfs, "sh", "-c", script, env={"UDOCKER_STOP_TIMEOUT": "0.5"}) as c:
        c.wait_for(ready)
        page = http_get(net.sandbox, "127.0.0.1", 8080)
        c.result().check(page == www.word + "\n", "the page through the proxy", repr(page))
        with net.sandbox.connect(("127.0.0.1", 8080)):
            begin = time.monotonic()
            c.signal(signal.SIGTERM)
            wait_until(lambda: c.proc.poll() is not None, timeout=5)
            took = time.monotonic() - begin
        result = c.finish()
    result.expect_exit(128 + signal.SIGKILL)
    result.check("did not stop within 0.5 s" in result.stderr, "the stop-timeout message", repr(result.stderr))
    result.check(0.4 < took < 3, "killed about 0.5 s after SIGTERM", f"{took:.2f} s")


def test_an_idle_proxy_costs_no_cpu(net, www):
    """udocker waits in select(): idle connections and a quiet container cost it no CPU (no busy loop)."""
    tag, ready = token("tag"), token("ready")
    with net.popen("run", *PUBLISH, www.rootfs, "sh", "-c", serve_web(ready, tag)) as c:
        c.wait_for(ready)
        page = http_get(net.sandbox, "127.0.0.1", 8080)
        c.result().check(page == www.word + "\n", "the page through the proxy", repr(page))
        clients = [net.sandbox.connect(("127.0.0.1", 8080)) for _ in range(4)]
        try:
            before = testing.cpu_seconds(c.pid)
            time.sleep(1.0)
            used = testing.cpu_seconds(c.pid) - before
        finally:
            for client in clients:
                client.close()
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(used < 0.05, "udocker using under 0.05 s of CPU in 1 s with 4 idle connections", f"{used:.3f} s")


def test_host_mode_discards_published_ports_with_dockers_warning(net, rootfs):
    result = net.run("run", "--network", "host", *PUBLISH, rootfs, "sh", "-c", "echo hi")
    result.expect_exit(0).expect_stdout("hi\n")
    result.check(result.stderr == "udocker: warning: published ports are discarded when using host network mode\n",
                 "docker's warning, one line", repr(result.stderr))
