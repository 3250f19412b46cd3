"""``lbp federate server|client|simulate|keys|app``: their command lines and option checks;
:mod:`lbp_motion.federated.flower.deploy` runs them.

lbp's flags are ``--snake_case`` like every ``lbp`` command (``--client_id``,
``--root_certificates``, ...); the 0.x spellings with hyphens still work for one
release, with a warning (:func:`lbp_motion.cli.commands.add_flag`). What lbp passes on to
Flower's own executables keeps Flower's spelling (:func:`transport` returns
``--ssl-ca-certfile ...`` for ``flower-superlink``). Arguments not listed here
(``--section.key value``) override the config, as with ``lbp fit``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lbp_motion.cli.commands import add_config, add_flag
from lbp_motion.errors import ConfigError

INSECURE_HELP = "no TLS: unencrypted traffic (trusted networks and tests only)"


def server_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lbp federate server",
        allow_abbrev=False,
        description="Run the federation's server: Flower's SuperLink plus the lbp ServerApp.",
    )
    add_config(p, help="the lbp config (as for lbp fit; repeatable, merged in order)")
    p.add_argument(
        "--host", default="0.0.0.0", help="address the public port listens on (default 0.0.0.0)"
    )
    p.add_argument(
        "--port",
        type=int,
        default=9092,
        help="the public port: Flower's Fleet API only, for the clinics' SuperNodes (default 9092)",
    )
    add_flag(
        p,
        "--control_port",
        "--control-port",
        type=int,
        default=None,
        help="port of the SuperLink itself "
        "(Control and Runtime APIs), on 127.0.0.1 only (default: a free one)",
    )
    add_flag(
        p,
        "--authorized_keys",
        "--authorized-keys",
        nargs="+",
        metavar="PUBLIC_KEY",
        default=None,
        help="the clinics' SuperNode public keys (OpenSSH EC, `lbp federate keys`): only these nodes may "
        "join (Flower's SuperNode authentication; needs TLS)",
    )
    p.add_argument("--insecure", action="store_true", help=INSECURE_HELP)
    add_flag(p, "--ssl_ca_certfile", "--ssl-ca-certfile", help="CA certificate (PEM)")
    add_flag(
        p,
        "--ssl_certfile",
        "--ssl-certfile",
        help="the server's certificate (PEM), signed by the CA",
    )
    add_flag(p, "--ssl_keyfile", "--ssl-keyfile", help="the server's private key (PEM)")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue this run from its last checkpoint at the next round",
    )
    add_flag(
        p,
        "--startup_timeout",
        "--startup-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the SuperLink to listen",
    )
    return p


def client_parser() -> argparse.ArgumentParser:
    """The command line of ``lbp federate client`` (unknown ``--section.key value``
    arguments are left for the config: ``parse_known_args``)."""
    p = argparse.ArgumentParser(
        prog="lbp federate client",
        allow_abbrev=False,
        description="Run one site of the federation: Flower's SuperNode plus the lbp ClientApp.",
    )
    add_config(
        p, help="the lbp config (the server's; repeatable; --data.root points at this site's data)"
    )
    add_client_site_arguments(p)
    add_client_security_arguments(p)
    add_client_connection_arguments(p)
    return p


def add_client_site_arguments(p: argparse.ArgumentParser) -> None:
    """Which server, which site, and where the site keeps its files."""
    p.add_argument("--server", required=True, metavar="HOST:PORT", help="the SuperLink's address")
    add_flag(
        p,
        "--client_id",
        "--client-id",
        type=int,
        default=0,
        help="this site's number (0, 1, ...): seeds its shuffling and dropout like client K of the simulation",
    )
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="local port of the SuperNode's Runtime API (default: a free one)",
    )
    add_flag(
        p,
        "--work_dir",
        "--work-dir",
        default=None,
        help="where the site keeps its settings and round log "
        "(default: <run.out_dir>/<run name>-site<K>)",
    )


def add_client_security_arguments(p: argparse.ArgumentParser) -> None:
    """TLS, the site's SuperNode key and the app bundles it agrees to run."""
    p.add_argument("--insecure", action="store_true", help=INSECURE_HELP)
    add_flag(
        p,
        "--root_certificates",
        "--root-certificates",
        help="CA certificate (PEM) that signed the server's certificate",
    )
    add_flag(
        p,
        "--auth_key",
        "--auth-key",
        metavar="PRIVATE_KEY",
        help="this site's SuperNode private key "
        "(OpenSSH EC, `lbp federate keys`); the server must hold its public key (--authorized_keys)",
    )
    add_flag(
        p,
        "--approve_app_hash",
        "--approve-app-hash",
        action="append",
        default=[],
        metavar="SHA256",
        help="also run the Flower app bundle with this hash (default: only the lbp app of this "
        "installation); repeatable",
    )


def add_client_connection_arguments(p: argparse.ArgumentParser) -> None:
    """How long to keep trying to reach the server, and the check of the site's data."""
    add_flag(
        p,
        "--connect_retries",
        "--connect-retries",
        type=int,
        default=10,
        help="attempts to reach the server before giving up with the reason (default 10)",
    )
    add_flag(
        p,
        "--connect_wait",
        "--connect-wait",
        type=float,
        default=300.0,
        help="seconds to keep trying to reach the server before giving up (default 300)",
    )
    add_flag(
        p,
        "--skip_check",
        "--skip-check",
        action="store_true",
        help="do not load the site's data before joining",
    )


def keys_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lbp federate keys",
        description="Make SuperNode key pairs (EC P-384, OpenSSH format) for the clinics.",
    )
    p.add_argument("folder")
    p.add_argument(
        "--sites",
        type=int,
        required=True,
        help="number of clinics: writes site0 ... site<N-1> (+ .pub)",
    )
    return p


def simulate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lbp federate simulate",
        allow_abbrev=False,
        description="Run the federation of a config on Flower's simulation engine (Ray): the same "
        "ServerApp and ClientApp as lbp federate server/client, one virtual SuperNode per site of the data.",
    )
    add_config(p, help="the lbp config (as for lbp fit; repeatable, merged in order)")
    p.add_argument(
        "--num_supernodes",
        type=int,
        required=True,
        help="virtual SuperNodes: the number of training sites of the data (one per site)",
    )
    p.add_argument(
        "--client_cpus", type=float, default=1.0, help="CPUs of each ClientApp (Ray; default 1)"
    )
    p.add_argument(
        "--client_gpus",
        type=float,
        default=0.0,
        help="GPUs of each ClientApp (Ray; fractions share a GPU, e.g. 0.25; default 0)",
    )
    return p


def app_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lbp federate app", description="Write the Flower app folder for `flwr run`."
    )
    p.add_argument("folder")
    return p


# -- checks of the arguments -------------------------------------------------------------------
def _absolute_overrides(overrides: list[str]) -> list[str]:
    """Make values that name existing files or folders absolute (the Flower apps run
    in other processes, possibly in other folders)."""
    out = []
    for item in overrides:
        if not item.startswith("-") and os.path.exists(item):
            item = str(Path(item).resolve())
        elif "=" in item and item.startswith("--"):
            key, value = item.split("=", 1)
            if os.path.exists(value):
                item = f"{key}={Path(value).resolve()}"
        out.append(item)
    return out


def configs(paths: list[str], overrides: list[str]) -> tuple[str, list[str]]:
    """The first config file, and the others as ``--config`` overrides (absolute paths)."""
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(f"--config {path}: no such file")
    first, *more = [str(Path(c).resolve()) for c in paths]
    extra = [a for c in more for a in ("--config", c)]
    return first, extra + _absolute_overrides(overrides)


def _files(*paths: str) -> list[str]:
    return [str(Path(p).resolve()) for p in paths]


def transport(args: argparse.Namespace, role: str) -> list[str]:
    """The TLS options of Flower's executables (their spelling) for lbp's, checked."""
    if role == "server":
        given = [args.ssl_ca_certfile, args.ssl_certfile, args.ssl_keyfile]
        if args.insecure and any(given):
            raise ConfigError(
                "lbp federate server: give either --insecure or the TLS certificates, not both"
            )
        if args.insecure:
            return ["--insecure"]
        if not all(given):
            raise ConfigError(
                "lbp federate server: TLS needs --ssl_ca_certfile, --ssl_certfile and --ssl_keyfile "
                "(docs/deploy.md); for unencrypted traffic on a trusted network pass --insecure"
            )
        for path in given:
            if not Path(path).is_file():
                raise ConfigError(f"lbp federate server: certificate file {path} does not exist")
        ca, cert, key = _files(*given)
        return ["--ssl-ca-certfile", ca, "--ssl-certfile", cert, "--ssl-keyfile", key]
    if args.insecure and args.root_certificates:
        raise ConfigError(
            "lbp federate client: give either --insecure or --root_certificates, not both"
        )
    if args.insecure:
        return ["--insecure"]
    if not args.root_certificates:
        raise ConfigError(
            "lbp federate client: TLS needs --root_certificates CA_CERT (the CA that signed the server's "
            "certificate, docs/deploy.md); for unencrypted traffic on a trusted network pass --insecure"
        )
    if not Path(args.root_certificates).is_file():
        raise ConfigError(
            f"lbp federate client: certificate file {args.root_certificates} does not exist"
        )
    return ["--root-certificates", *_files(args.root_certificates)]


def check_public_keys(paths: list[str]) -> list[Path]:
    """``--authorized_keys``: OpenSSH EC public keys, as absolute paths."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    out = []
    for path in paths:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"--authorized_keys {path}: no such file")
        try:
            key = serialization.load_ssh_public_key(file.read_bytes())
        except (ValueError, TypeError, UnsupportedAlgorithm) as err:
            raise ConfigError(
                f"--authorized_keys {path}: not an OpenSSH public key ({err})"
            ) from None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ConfigError(
                f"--authorized_keys {path}: not an EC public key (make keys with `lbp federate keys`)"
            )
        out.append(file.resolve())
    return out


def authorized_keys(args: argparse.Namespace) -> list[Path] | None:
    """The server's ``--authorized_keys``, checked (they need TLS); None without them."""
    if not args.authorized_keys:
        return None
    if args.insecure:
        raise ConfigError(
            "lbp federate server: --authorized_keys (SuperNode authentication) needs TLS, not --insecure"
        )
    return check_public_keys(args.authorized_keys)


def check_client_args(args: argparse.Namespace) -> None:
    """The client's options that :func:`transport` does not check."""
    if args.auth_key:
        if args.insecure:
            raise ConfigError(
                "lbp federate client: --auth_key (SuperNode authentication) needs TLS, not --insecure"
            )
        if not Path(args.auth_key).is_file():
            raise ConfigError(f"lbp federate client: --auth_key {args.auth_key}: no such file")
    if args.connect_retries < 1 or args.connect_wait <= 0:
        raise ConfigError(
            "lbp federate client: --connect_retries must be at least 1 and --connect_wait positive"
        )
    for value in args.approve_app_hash:
        if len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
            raise ConfigError(
                f"--approve_app_hash {value}: expected a SHA-256 in hex (64 characters)"
            )


def cmd_server(argv: list[str]) -> int:
    from lbp_motion.federated.flower.deploy import run_server

    args, overrides = server_parser().parse_known_args(argv)
    tls = transport(args, "server")
    keys = authorized_keys(args)
    config, overrides = configs(args.config, overrides)
    return run_server(args, config, overrides, tls, keys)


def cmd_client(argv: list[str]) -> int:
    from lbp_motion.federated.flower.deploy import run_client

    args, overrides = client_parser().parse_known_args(argv)
    tls = transport(args, "client")
    check_client_args(args)
    config, overrides = configs(args.config, overrides)
    return run_client(args, config, overrides, tls)


def cmd_simulate(argv: list[str]) -> int:
    from lbp_motion.federated.flower.simulation import run_simulation

    args, overrides = simulate_parser().parse_known_args(argv)
    config, overrides = configs(args.config, overrides)
    run_simulation(config, overrides, args.num_supernodes, args.client_cpus, args.client_gpus)
    return 0


def cmd_keys(argv: list[str]) -> int:
    from lbp_motion.federated.flower.deploy import write_keys

    args = keys_parser().parse_args(argv)
    folder = write_keys(args.folder, args.sites)
    print(
        f"Wrote {args.sites} key pair(s) in {folder}: give clinic K its private key siteK (--auth_key); "
        "the server lists the .pub files (--authorized_keys)"
    )
    return 0


def cmd_app(argv: list[str]) -> int:
    from lbp_motion.federated.flower.deploy import write_app

    args = app_parser().parse_args(argv)
    folder = write_app(args.folder)
    print(
        f"Wrote {folder / 'pyproject.toml'}; run it with: flwr run {folder} CONNECTION --stream "
        "--run-config 'lbp-server=\"/path/to/server.json\"' (docs/deploy.md)"
    )
    return 0


SUBCOMMANDS = {
    "server": cmd_server,
    "client": cmd_client,
    "simulate": cmd_simulate,
    "app": cmd_app,
    "keys": cmd_keys,
}


def cmd_federate(argv: list[str]) -> int:
    """``lbp federate``: real multi-site FedAvg on Flower (server, client, simulate, keys, app)."""
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print(
            "usage: lbp federate {server,client,simulate,app,keys} [options]   (lbp federate server --help; docs/deploy.md)"
        )
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    import importlib.util

    if argv[0] not in ("app", "keys") and importlib.util.find_spec("flwr") is None:
        raise ConfigError('lbp federate needs Flower: pip install "lbp-motion[fl]" (flwr 1.41)')
    return SUBCOMMANDS[argv[0]](argv[1:])
