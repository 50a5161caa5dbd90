"""Accounts' provider keys encrypted with the fixed secret key of earlier releases (the one
used when DJANGO_SECRET_KEY was not set: public) are encrypted again with this install's
own key (``memoryrelay_site.secrets.secret_reencrypted``). Keys neither can read are left
as they are (the account adds them again)."""

from django.db import migrations


def reencrypt(apps, schema_editor):
    from memoryrelay_site.secrets import secret_reencrypted

    keys = apps.get_model("entities_app", "ExtractionKey")
    for pk, token in keys.objects.values_list("pk", "encrypted_key").iterator():
        again = secret_reencrypted(token)
        if again is not None:
            keys.objects.filter(pk=pk, encrypted_key=token).update(encrypted_key=again)


class Migration(migrations.Migration):
    dependencies = [("entities_app", "0007_cooccurrence_lock_order")]

    operations = [migrations.RunPython(reencrypt, migrations.RunPython.noop)]
