"""`python -m tests.oauth.refresher INTEGRATION_ID COUNT`: one process of the concurrent
refresh test. Settings come from the environment (HOOKHUB_*), as a service's would.

Prints `ready` once connected, waits for a line on stdin (so both processes start
together), asks for the integration's access token COUNT times concurrently, and prints
the answers as one JSON list (errors as `error: ...`).
"""

from __future__ import annotations

import asyncio
import json
import sys

from prometheus_client import CollectorRegistry

from shared.kernel.crypto import SecretBox
from shared.kernel.kafka import EventPublisher
from shared.kernel.mongo import connect
from shared.kernel.settings import Settings
from shared.providers.apps import token_keeper


async def main(integration_id: str, count: int) -> None:
    settings = Settings()
    client = connect(settings, "hookhub-refresher")
    publisher = EventPublisher(settings, "refresher", CollectorRegistry())
    await publisher.start()
    keeper = token_keeper(
        client[settings.mongo_db], SecretBox(settings.encryption_key_list), settings, publisher
    )
    await client[settings.mongo_db].command("ping")
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    answers = await asyncio.gather(
        *(keeper.access_token(integration_id) for _ in range(count)), return_exceptions=True
    )
    print(json.dumps([a if isinstance(a, str) else f"error: {a!r}" for a in answers]), flush=True)
    await publisher.stop()
    await client.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
