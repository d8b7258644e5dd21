"""What every service has of the domain, plugged into the kernel's app and runtime.

The kernel (shared.kernel.http.app, shared.kernel.runtime) builds a service that knows no
workspace, no API key and no audit log; `DOMAIN` is the `Platform` it is given here: the
indexes of the audit log and of usage, the retention runner, the API keys and portal
sessions as callers, the workspace a request is confined to, and the audit trail of its
changes. `create_app` is the kernel's with it: what the command line (services/cli.py) and
the tests serve.
"""

from __future__ import annotations

from shared.domain import api_keys, audit, retention, tenancy, usage
from shared.kernel.http import app as kernel
from shared.kernel.http.app import Plugs, ServiceApp
from shared.kernel.mongo import BatchedWriter
from shared.kernel.process import ServiceProcess
from shared.kernel.runtime import Runtime, ServiceDefinition
from shared.kernel.settings import ServiceSettings


class Domain:
    def install(self, app: ServiceApp, runtime: Runtime) -> Plugs:
        runtime.declare(*audit.indexes(runtime.settings), *usage.INDEXES)
        retention.install(runtime)
        # The writer of keys' `last_used_at` and of the audit log's entries, started with
        # the service. It flushes every second, so that an entry is listed that soon after
        # its change (a key's `last_used_at` is handed to it once a minute at most, and an
        # idle flush costs nothing).
        writer = BatchedWriter(runtime.db, interval=1.0)

        async def start(_: ServiceProcess) -> None:
            writer.start()

        runtime.on_startup(start)
        runtime.on_shutdown("access_writer", writer.stop, minimum=0.02)
        credentials = api_keys.Credentials(runtime, writer)
        app.state.credentials = credentials
        app.state.audit = audit.AuditLog(runtime.db, writer)
        return Plugs(
            credentials=credentials, confine=tenancy.confine, changes=audit.AuditRecorder()
        )


DOMAIN = Domain()


def create_app(
    definition: ServiceDefinition, settings: ServiceSettings | None = None
) -> ServiceApp:
    """A service's app, with the domain plugged in (shared.kernel.http.app.create_app)."""
    return kernel.create_app(definition, settings, platform=DOMAIN)
