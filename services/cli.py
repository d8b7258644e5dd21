"""The `hookhub` command: serve one service, run the embedded stack, manage keys, listen."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet

from shared.kernel.settings import SERVICE_PORTS, ConfigurationError

if TYPE_CHECKING:  # the runtime's imports are a second of CPU: `keys generate` needs none
    from shared.kernel.runtime import ServiceDefinition

SERVICES = tuple(SERVICE_PORTS)


def load_definition(name: str) -> ServiceDefinition:
    module = importlib.import_module(f"services.{name}.app")
    definition: ServiceDefinition = module.definition()
    return definition


def serve(name: str, host: str | None, port: int | None) -> int:
    from shared.domain.platform import create_app
    from shared.kernel import tracing
    from shared.kernel.http.server import ServiceServer
    from shared.kernel.logging import configure_logging

    definition = load_definition(name)
    try:
        settings = definition.settings_class()
    except ConfigurationError as exc:
        print(f"hookhub {name}: {exc}", file=sys.stderr)
        return 2
    if port:
        settings.port = port
    tracing.configure(name)  # before the logging, whose lines then carry the trace ids
    configure_logging(settings.log_level, settings.log_format, service=name)
    app = create_app(definition, settings)
    _settle_heap()
    host = host or os.environ.get("HOOKHUB_HOST", "0.0.0.0")
    config = ServiceServer.make_config(
        app, host, settings.port_for(name), settings.shutdown_seconds
    )
    ServiceServer(config).run()
    return 0


def _settle_heap() -> None:
    """Keep the garbage collector's full collections to what requests allocate.

    A full collection walks every object the process holds: modules, classes and the app,
    about 100,000 of them. Under load one ran every second or two and paused a gateway for
    60 ms each time (6% of its CPU). What exists once the app is built lives as long as the
    process, so it is frozen out of collections.
    """
    import gc

    gc.collect()
    gc.freeze()


def edge(host: str, port: int, upstreams: Sequence[str]) -> int:
    import uvicorn

    from services.edge import edge_config
    from shared.kernel.settings import Settings

    settings = Settings()
    table = {name: f"http://127.0.0.1:{default}" for name, default in SERVICE_PORTS.items()}
    for name in SERVICE_PORTS:
        table[name] = os.environ.get(f"HOOKHUB_{name.upper()}_URL", table[name]).rstrip("/")
    for item in upstreams:
        name, _, url = item.partition("=")
        table[name] = url.rstrip("/")
    config = edge_config(
        table,
        host,
        port,
        header_timeout=settings.edge_header_timeout_seconds,
        body_timeout=settings.edge_body_timeout_seconds,
        portal_frame_ancestors=settings.portal_frame_ancestors,
        timeout_graceful_shutdown=2,  # proxied requests in flight; then it is gone
    )
    uvicorn.Server(config).run()
    return 0


def sandbox(port: int) -> int:
    """The providers' stand-ins, seeded, on 127.0.0.1:`port` (`hookhub run --sandbox` starts
    it; services/sandbox/app.py). Refused outside HOOKHUB_ENV=dev."""
    from shared.kernel.settings import Settings

    try:
        settings = Settings()
    except ConfigurationError as exc:
        print(f"hookhub sandbox: {exc}", file=sys.stderr)
        return 2
    if why := settings.sandbox_refused():
        print(why, file=sys.stderr)
        return 2
    import uvicorn

    from services.sandbox.app import Sandbox, credentials
    from shared.kernel.envelopes import Topic
    from shared.kernel.logging import configure_logging

    settings.resolve_dev_secrets()
    configure_logging(settings.log_level, settings.log_format, service="sandbox")
    origin = f"http://127.0.0.1:{settings.http_port}"
    app = Sandbox(
        credentials(settings.data_dir),
        port=port,
        public_url=settings.public_url or origin,
        origin=origin,
        admin_token=settings.admin_token,
        chat_inbound=(settings.kafka_bootstrap, settings.topic(Topic.CHAT_INBOUND)),
    ).app()
    # log_config=None: uvicorn's own lines rendered by shared.kernel.logging, like the services'.
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", log_config=None, ws="websockets"
    )
    return 0


def rotate_keys() -> int:
    import asyncio

    from shared.domain.keys import rotate_all
    from shared.kernel.crypto import SecretBox
    from shared.kernel.mongo import connect
    from shared.kernel.settings import Settings

    settings = Settings().resolve_dev_secrets()

    async def run() -> dict[str, int]:
        client = connect(settings, "hookhub-keys")
        try:
            return await rotate_all(
                client[settings.mongo_db], SecretBox(settings.encryption_key_list)
            )
        finally:
            await client.close()

    for collection, count in asyncio.run(run()).items():
        print(f"{collection}: {count} documents re-encrypted")
    print("done: keys after the first in HOOKHUB_ENCRYPTION_KEYS can now be removed")
    return 0


def ensure_topics() -> int:
    """Every topic of every service, created with HOOKHUB_KAFKA_PARTITIONS and
    HOOKHUB_KAFKA_REPLICATION_FACTOR where missing; existing topics are left as they are.
    Run before the services (the chart's topics Job); they create what is missing too."""
    import asyncio

    from shared.kernel import kafka
    from shared.kernel.settings import Settings

    settings = Settings()
    internal = [topic for name in SERVICES for topic in load_definition(name).internal_topics]
    names = kafka.topic_names(settings, internal)
    try:
        created = set(asyncio.run(kafka.ensure_topics(settings, names)))
    except Exception as exc:
        print(f"hookhub topics ensure: {settings.kafka_bootstrap}: {exc!r}", file=sys.stderr)
        return 1
    for name in names:
        if name in created:
            print(
                f"created {name} ({settings.kafka_partitions} partitions, "
                f"replication factor {settings.kafka_replication_factor})"
            )
        else:
            print(f"exists  {name} (left as it is)")
    print(f"done: {len(created)} created, {len(names) - len(created)} already there")
    return 0


def listen(args: argparse.Namespace) -> int:
    """`hookhub listen`: an endpoint's deliveries forwarded to a local URL, through a
    WebSocket to hookhub (services/delivery/listen/client.py, docs/listen.md)."""
    from services.delivery.listen.client import Options, run

    key = args.key or os.environ.get("HOOKHUB_API_KEY", "")
    if not key:
        print(
            "hookhub listen: a workspace key is needed: HOOKHUB_API_KEY or --key",
            file=sys.stderr,
        )
        return 2
    events = [e.strip() for e in (args.events or "").split(",") if e.strip()] or None
    if args.endpoint is None and events is None:
        print("hookhub listen: --events names at least one event type", file=sys.stderr)
        return 2
    return run(
        Options(
            origin=args.url,
            key=key,
            forward_to=args.forward_to,
            endpoint_id=args.endpoint,
            events=events,
            name=args.name,
            workspace_id=args.workspace,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hookhub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="run one service (as in production)")
    serve_cmd.add_argument("service", choices=SERVICES)
    serve_cmd.add_argument("--host", default=None)
    serve_cmd.add_argument("--port", type=int, default=None)

    run_cmd = commands.add_parser(
        "run", help="the embedded stack: broker, database, every service, :8080"
    )
    run_cmd.add_argument(
        "--sandbox",
        action="store_true",
        help="with every provider's stand-in, seeded, at /sandbox/ (HOOKHUB_ENV=dev only)",
    )

    sandbox_cmd = commands.add_parser(
        "sandbox", help="the providers' stand-ins alone (what `run --sandbox` starts)"
    )
    sandbox_cmd.add_argument("--port", type=int, required=True)

    edge_cmd = commands.add_parser("edge", help="the single-origin router in front of the services")
    edge_cmd.add_argument("--host", default="0.0.0.0")
    edge_cmd.add_argument(
        "--port", type=int, default=int(os.environ.get("HOOKHUB_HTTP_PORT", "8080"))
    )
    edge_cmd.add_argument("--upstream", action="append", default=[], metavar="SERVICE=URL")

    keys_cmd = commands.add_parser("keys", help="encryption keys for secrets at rest")
    keys_sub = keys_cmd.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("generate", help="print a new key for HOOKHUB_ENCRYPTION_KEYS")
    keys_sub.add_parser(
        "rotate", help="re-encrypt every stored secret under the first HOOKHUB_ENCRYPTION_KEYS key"
    )

    topics_cmd = commands.add_parser("topics", help="Kafka topics")
    topics_sub = topics_cmd.add_subparsers(dest="topics_command", required=True)
    topics_sub.add_parser(
        "ensure", help="create every topic hookhub uses where missing (idempotent)"
    )

    listen_cmd = commands.add_parser(
        "listen",
        help="deliveries to this machine: an endpoint's events forwarded to a local URL",
        description="Opens a WebSocket to hookhub with a workspace key (HOOKHUB_API_KEY) "
        "and forwards each delivery of a listening endpoint to a local URL, signed as "
        "hookhub signs them; the local answer is logged as the attempt (docs/listen.md).",
    )
    listen_cmd.add_argument("--forward-to", required=True, metavar="URL", help="the local URL")
    target = listen_cmd.add_mutually_exclusive_group(required=True)
    target.add_argument("--endpoint", metavar="ID", help="a listening endpoint's id")
    target.add_argument(
        "--events",
        metavar="PATTERNS",
        help="comma-separated event types or wildcards ('message.*'): the listening "
        "endpoint for them is made, or found again with the same key, events and name",
    )
    listen_cmd.add_argument(
        "--name", default="hookhub listen", help="the endpoint's name, with --events"
    )
    listen_cmd.add_argument(
        "--workspace", default=None, help="with the admin token instead of a key: its workspace"
    )
    listen_cmd.add_argument(
        "--url",
        default=os.environ.get("HOOKHUB_URL")
        or f"http://127.0.0.1:{os.environ.get('HOOKHUB_HTTP_PORT', '8080')}",
        help="hookhub's origin (HOOKHUB_URL; default http://127.0.0.1:8080)",
    )
    listen_cmd.add_argument("--key", default=None, help="else HOOKHUB_API_KEY")

    args = parser.parse_args(argv)
    if args.command == "listen":
        return listen(args)
    if args.command == "serve":
        return serve(args.service, args.host, args.port)
    if args.command == "run":
        from services.stack import run_stack

        return run_stack(sandbox=args.sandbox)
    if args.command == "sandbox":
        return sandbox(args.port)
    if args.command == "edge":
        return edge(args.host, args.port, args.upstream)
    if args.command == "keys" and args.keys_command == "generate":
        print(Fernet.generate_key().decode())
        return 0
    if args.command == "keys" and args.keys_command == "rotate":
        return rotate_keys()
    if args.command == "topics":
        return ensure_topics()
    parser.error("unknown command")
    return 2


if __name__ == "__main__":
    sys.exit(main())
