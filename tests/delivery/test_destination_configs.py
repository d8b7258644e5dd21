"""A destination's config as stored and as opened to deliver (services.delivery.destinations)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from services.delivery.destinations.catalog import seal, spec_of
from services.delivery.destinations.schemas import RabbitMqConfig
from shared.kernel.crypto import SecretBox

BOX = SecretBox([Fernet.generate_key().decode()])


def test_an_amqp_url_names_no_file_of_the_delivery_process() -> None:
    """aiormq reads `cafile`, `capath`, `certfile` and `keyfile` from an AMQP URL's query as
    paths on the delivery process's machine: refused from a workspace, with `cadata` (a CA
    certificate, data) the way to trust a private CA. One stored before they were refused
    is opened to deliver without them, so an old endpoint delivers (or fails its TLS
    check) rather than read a file, and the endpoints' cache still opens it."""
    with pytest.raises(ValidationError, match="'cafile' is not taken"):
        RabbitMqConfig(url="amqps://u:p@rabbit.example.com/?cafile=/etc/passwd")
    with pytest.raises(ValidationError, match="cadata"):
        RabbitMqConfig(url="amqps://rabbit.example.com/?cadata=not%20base64")
    taken = "amqps://u:p@rabbit.example.com/?heartbeat=30&name=hookhub&cadata=MIIB"
    assert RabbitMqConfig(url=taken).url == taken

    url = "amqps://u:p@rabbit.example.com:5671/vh?heartbeat=30&certfile=/k.pem&keyfile=/k.key"
    stored = seal("rabbitmq", RabbitMqConfig(url=taken), BOX)
    stored["secrets"]["url"] = BOX.encrypt(url)  # as an endpoint made before the check
    spec = spec_of(stored, BOX)
    assert spec is not None and isinstance(spec.config, RabbitMqConfig)
    assert spec.config.url == "amqps://u:p@rabbit.example.com:5671/vh?heartbeat=30"
