from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0002_prediction_enqueued_at"),
    ]

    operations = [
        migrations.RemoveField(model_name="prediction", name="enqueued_at"),
    ]
