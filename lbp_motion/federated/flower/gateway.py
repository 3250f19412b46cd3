"""The public port of ``lbp federate server``: Flower's Fleet API and nothing else.

Flower 1.41 serves its Fleet API (SuperNodes), Control API (``flwr run``, ``flwr ls``,
``flwr stop``, ``flwr supernode register``) and Runtime API (ServerApp processes) on one
HTTP(S) port, and the open-source Control API authenticates nobody
(``--control-api-address`` is deprecated and ignored). Whoever reaches that port with
the CA certificate could submit their own app to every clinic. So ``lbp federate
server`` binds the SuperLink to ``127.0.0.1`` on a private port and puts this gateway
on the public port: it forwards requests under ``/v1/fleet/`` to the SuperLink and
answers everything else with 403. TLS is terminated here with the server's
certificate and re-established to the SuperLink (same certificate, SAN 127.0.0.1).

Run as ``python -m lbp_motion.federated.flower.gateway --listen HOST:PORT --upstream
127.0.0.1:PORT [--ssl-certfile F --ssl-keyfile F --ssl-ca-certfile F]``.
"""

from __future__ import annotations

import argparse
import sys

FLEET_PREFIX = "/v1/fleet/"
REFUSED = b"lbp gateway: only the Fleet API (/v1/fleet/) is served on this port"
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-encoding",
}


def allowed(path: str) -> bool:
    """Whether a request path may pass the public port (the Fleet API only)."""
    return path.startswith(FLEET_PREFIX) and ".." not in path


def make_app(upstream: str, ca_certfile: str | None):
    """The ASGI app: forward Fleet API requests to ``upstream`` (``http(s)://host:port``)."""
    import ssl

    import httpx

    verify = ssl.create_default_context(cafile=ca_certfile) if ca_certfile else False
    client = httpx.AsyncClient(
        base_url=upstream, verify=verify, timeout=httpx.Timeout(600.0, connect=10.0)
    )

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if not allowed(path):
            peer = (scope.get("client") or ("?", 0))[0]
            print(
                f"lbp gateway: refused {scope['method']} {path} from {peer}",
                file=sys.stderr,
                flush=True,
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"text/plain"),
                        (b"content-length", str(len(REFUSED)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": REFUSED})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = [
            (k, v) for k, v in scope["headers"] if k.decode("latin-1").lower() not in _HOP_BY_HOP
        ]
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            response = await client.request(
                scope["method"],
                path + (f"?{query}" if query else ""),
                headers=headers,
                content=body,
            )
        except httpx.HTTPError as err:
            text = f"lbp gateway: the SuperLink did not answer: {err}".encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 502,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "http.response.body", "body": text})
            return
        out = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in response.headers.items()
            if k.lower() not in _HOP_BY_HOP
        ]
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        await send({"type": "http.response.body", "body": response.content})

    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lbp-gateway", description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", required=True, metavar="HOST:PORT")
    p.add_argument("--upstream", required=True, metavar="HOST:PORT")
    p.add_argument("--ssl-certfile")
    p.add_argument("--ssl-keyfile")
    p.add_argument("--ssl-ca-certfile")
    args = p.parse_args(argv)
    import uvicorn

    host, _, port = args.listen.rpartition(":")
    scheme = "https" if args.ssl_certfile else "http"
    app = make_app(f"{scheme}://{args.upstream}", args.ssl_ca_certfile)
    uvicorn.run(
        app,
        host=host.strip("[]"),
        port=int(port),
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
