"""Whether a clinic can talk to its server, and why not, in one line: before its
SuperNode starts (:func:`wait_for_server`) and after it stopped
(:func:`probe_server`, :func:`supernode_failure`), for ``lbp federate client``.
"""

from __future__ import annotations

import socket
import sys
import time

from lbp_motion.federated.flower.processes import FederateError


def probe_server(server: str, root_certificates: str | None, timeout: float = 5.0) -> str | None:
    """Why this site cannot talk to ``server`` now (one line), or None when it can:
    unreachable, TLS on one side only, or a certificate that the CA did not sign."""
    import ssl

    host, _, port = server.rpartition(":")
    host = host.strip("[]")
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout)
    except socket.gaierror as err:
        return f"cannot resolve the server name {host!r} ({err.strerror})"
    except TimeoutError:
        return f"cannot reach {server}: no answer within {timeout:.0f} s (host down, or a firewall drops the traffic)"
    except OSError as err:
        return f"cannot reach {server}: {err.strerror or err} (is the server running and the port open?)"
    with sock:
        sock.settimeout(timeout)
        if root_certificates is None:  # plain HTTP: a TLS server answers with an alert or closes
            try:
                sock.sendall(
                    f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
                )
                head = sock.recv(16)
            except OSError:
                head = b""
            if head.startswith(b"HTTP/"):
                return None
            return (
                f"{server} did not answer plain HTTP: the server runs TLS; give --root_certificates CA_CERT "
                "instead of --insecure"
            )
        context = ssl.create_default_context(cafile=root_certificates)
        try:
            with context.wrap_socket(sock, server_hostname=host):
                return None
        except ssl.SSLCertVerificationError as err:
            if (
                "hostname" in str(err.verify_message).lower()
                or "ip address mismatch" in str(err).lower()
            ):
                return f"the server's certificate does not name {host!r}: {err.verify_message}"
            return (
                f"the server's certificate is not signed by --root_certificates {root_certificates} "
                f"(wrong CA?): {err.verify_message}"
            )
        except ssl.SSLError as err:
            if (
                "WRONG_VERSION_NUMBER" in str(err)
                or "record layer" in str(err).lower()
                or "packet length" in str(err)
            ):
                return f"{server} does not speak TLS (the server runs --insecure?): {err.reason}"
            return f"TLS handshake with {server} failed: {err.reason or err}"
        except OSError as err:
            return f"TLS handshake with {server} failed: {err}"


def wait_for_server(server: str, root_certificates: str | None, attempts: int, wait: float) -> None:
    """Probe the server up to ``attempts`` times within ``wait`` seconds; raise
    :class:`FederateError` with the reason. TLS problems fail at once (retrying cannot
    fix them); an unreachable server is retried (it may not be up yet)."""
    deadline = time.monotonic() + wait
    for attempt in range(1, max(attempts, 1) + 1):
        reason = probe_server(server, root_certificates)
        if reason is None:
            return
        if not reason.startswith(("cannot reach", "cannot resolve")):
            raise FederateError(reason)
        if attempt >= attempts or time.monotonic() + min(2.0 * attempt, 30.0) > deadline:
            raise FederateError(f"{reason}; gave up after {attempt} attempt(s)")
        print(
            f"lbp federate client: {reason}; retrying ({attempt}/{attempts})",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(min(2.0 * attempt, 30.0))


def supernode_failure(lines: list[str]) -> str:
    """The likely reason in the last lines a SuperNode printed before it exited."""
    text = "\n".join(lines)
    low = text.lower()
    if (
        "failed to activate" in low
        or "activation_failed" in low
        or "no supernode found" in low
        or "401" in low
        or "registration" in low
        or "invalid supernode authentication" in low
    ):
        return (
            "the server does not know this site's SuperNode key: give --auth_key PRIVATE_KEY and have the "
            "server list its public key in --authorized_keys"
        )
    if "certificate" in low or "ssl" in low or "tls" in low:
        return "TLS failed between this site and the server (check --root_certificates and the server's certificate)"
    for line in reversed(lines):
        if line.strip() and "error" in line.lower():
            return line.strip()[:300]
    return lines[-1].strip()[:300] if lines else "no output"
