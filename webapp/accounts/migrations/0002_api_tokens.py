"""API tokens kept as digests, with an expiry; the clear-text tokens are carried over.

Before this, DRF's authtoken app kept each user's token key in clear in `authtoken_token`.
Every such key is carried over: its sha256 digest is what an ApiToken stores and looks keys up
under, so an integration keeps working with the key it has. Each carried-over token expires
API_TOKEN_TTL_DAYS after this migration runs (not after it was first issued, which would end
most of them at once). The clear keys are then deleted from `authtoken_token`; the emptied
table is left in place (the authtoken app is no longer installed; drop the table by hand if
wanted). A database without that table (a new installation) has nothing to carry over.

Reversing this migration drops the digests: every token is revoked and users sign in again.
"""

import hashlib
from datetime import timedelta

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

OLD_TABLE = "authtoken_token"


def carry_over_clear_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if OLD_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("accounts", "ApiToken")
    now = timezone.now()
    expires_at = now + timedelta(days=settings.API_TOKEN_TTL_DAYS)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {OLD_TABLE}")
        rows = cursor.fetchall()
        ApiToken.objects.bulk_create(
            ApiToken(
                user_id=user_id,
                digest=hashlib.sha256(key.encode()).hexdigest(),
                created_at=created or now,
                expires_at=expires_at,
            )
            for key, user_id, created in rows
        )
        cursor.execute(f"DELETE FROM {OLD_TABLE}")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='ApiToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('digest', models.CharField(max_length=64, unique=True)),
                ('created_at', models.DateTimeField()),
                ('expires_at', models.DateTimeField()),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_tokens', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'indexes': [models.Index(fields=['user', 'expires_at'], name='apitoken_user_expires_idx')],
            },
        ),
        migrations.RunPython(carry_over_clear_tokens, migrations.RunPython.noop),
    ]
