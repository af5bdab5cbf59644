from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"

    def ready(self):
        from pipeline_project.lib import events
        from webhooks.outbox import outbox

        events.listen(outbox)  # announced events become delivery rows (the outbox)
