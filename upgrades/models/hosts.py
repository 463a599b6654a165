"""The machines an environment's SSH command hooks run on.

A host row holds where to connect, as whom, and the host's public key (verified on every
connection, never learnt on first use). The private key is never in the database: the row names
a file on the worker (a mounted secret) or a ``*_FILE`` environment variable naming one.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from upgrades.models.environments import Environment


class EnvironmentHost(models.Model):
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="hosts")
    address = models.CharField(
        max_length=255, help_text="A host name or IP address, e.g. app1.mycelia.internal."
    )
    port = models.PositiveIntegerField(
        default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    user = models.CharField(max_length=100, help_text="The account the commands run as.")
    host_key = models.TextField(
        "host's public key",
        help_text="One line as in known_hosts or /etc/ssh/ssh_host_ed25519_key.pub: "
        "ssh-ed25519 AAAA…; connections to a host that shows another key are refused.",
    )
    private_key_file = models.CharField(
        "private key",
        max_length=500,
        help_text="Where the worker reads the private key: a file path (a mounted secret, e.g. "
        "/run/secrets/mycelia_ssh_key) or the name of an environment variable ending in _FILE "
        "that holds such a path (e.g. MYCELIA_SSH_KEY_FILE). The key itself is never stored.",
    )
    working_directory = models.CharField(
        max_length=500, blank=True, help_text="Where commands run on the host (blank: home)."
    )

    class Meta:
        ordering = ["environment", "address", "port", "user"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "address", "port", "user"], name="one_host_per_login"
            )
        ]

    def __str__(self) -> str:
        return self.login

    @property
    def login(self) -> str:
        """user@host:port, the way the pages name a host."""
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.user}@{address}:{self.port}"
