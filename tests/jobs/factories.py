import factory

from jobs.models import Job, JobEvent, JobStatus, Priority, SourceType
from tests.factories import OrganizationFactory


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    status = JobStatus.QUEUED
    source_type = SourceType.URL
    source_uri = factory.Sequence(lambda n: f"https://example.com/doc-{n}.pdf")
    file_name = factory.Sequence(lambda n: f"doc-{n}.pdf")
    priority = Priority.NORMAL

    @factory.post_generation
    def with_event(job, create, extracted, **kwargs):
        if create:
            JobEvent.objects.create(job=job, to_status=job.status, actor="system", message="created")
