# The constraints come in a migration of their own: PostgreSQL adds no constraint to a table
# with row changes still pending in the same transaction (0003's backfill).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('reviews', '0003_review_history_and_claims'),
    ]

    operations = [
        migrations.AddConstraint(
            model_name='review',
            constraint=models.UniqueConstraint(condition=models.Q(('superseded_at__isnull', True)), fields=('prediction',), name='review_one_standing_per_prediction'),
        ),
        migrations.AddConstraint(
            model_name='review',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('superseded_at__isnull', True), ('superseded_by__isnull', True)), ('superseded_at__isnull', False), _connector='OR'), name='review_superseded_together'),
        ),
    ]
