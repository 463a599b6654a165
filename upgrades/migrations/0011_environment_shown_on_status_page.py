from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("upgrades", "0010_environment_phase_messages"),
    ]

    operations = [
        migrations.AddField(
            model_name="environment",
            name="public_status",
            field=models.BooleanField(
                blank=True,
                help_text="Whether this environment's upgrades, services and incidents reach the public status page, its feeds, JSON and subscribers. Unknown: by kind (production shown, staging not).",
                null=True,
                verbose_name="shown on the status page",
            ),
        ),
    ]
