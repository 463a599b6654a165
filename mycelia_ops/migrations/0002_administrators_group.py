"""The third role: administrators set the product up on its own pages (superusers are
administrators whether or not they are in the group)."""

from __future__ import annotations

from django.db import migrations

NAME = "Administrators"


def create_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name=NAME)


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("mycelia_ops", "0001_create_role_groups")]
    operations = [migrations.RunPython(create_group, remove_group)]
