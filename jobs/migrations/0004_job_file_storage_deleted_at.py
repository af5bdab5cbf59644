from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0003_job_file_sha256'),
    ]

    operations = [
        migrations.AddField(
            model_name='jobfile',
            name='storage_deleted_at',
            field=models.DateTimeField(blank=True, help_text='When this file let go of its stored object, UPLOAD_RETENTION after its job ended (cleanup_uploads; the object goes once no file holds it). Its job cannot be retried then.', null=True),
        ),
        migrations.AddIndex(
            model_name='jobfile',
            index=models.Index(fields=['storage_name'], name='job_file_storage_name'),
        ),
    ]
