import memories_app.vectors
from django.db import migrations


class Migration(migrations.Migration):
    """PostgreSQL: a database that took an earlier 0007, which indexed (account_id,
    search_vector), gets the live-memories text index and loses that one (slower for a
    large account, see memories_app.vectors.LIVE_TEXT_INDEX). Elsewhere nothing."""

    dependencies = [
        ('memories_app', '0007_memory_live_search_index'),
    ]

    operations = [
        migrations.RunPython(memories_app.vectors.drop_account_text_index,
                             migrations.RunPython.noop),
    ]
