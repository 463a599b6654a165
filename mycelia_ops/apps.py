from __future__ import annotations

from pathlib import Path

from django.apps import AppConfig
from django.conf import settings


class MyceliaOpsConfig(AppConfig):
    name = "mycelia_ops"

    def ready(self) -> None:
        data_folders_ensure()


def data_folders_ensure() -> None:
    """Make the data folder, and the filesystem broker's folders when that broker is used, at
    start (every process sets Django up before it reads or writes there), rather than when the
    settings are imported."""
    folders = [Path(settings.DATA_DIR)]
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        folders += [
            Path(options[key])
            for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")
            if options.get(key)
        ]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
